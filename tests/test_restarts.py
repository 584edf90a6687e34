"""The one restarts rule the job and the study share, and the job's tally."""

from __future__ import annotations

import pytest

from transformers_fine_tuning.restarts import RestartRun, Restarts, RestartsTally


@pytest.mark.parametrize(
    ("hopeful", "taken", "more"),
    [
        (0, 0, 2),  # nothing yet: as many runs as successes wanted
        (1, 1, 1),  # one success of two: one more
        (2, 5, 0),  # enough successes
        (0, 9, 1),  # the budget's last run
        (0, 10, 0),  # the budget spent
        (3, 3, 0),  # more hopeful than needed (runs still running count)
    ],
)
def test_runs_to_add_reaches_the_successes_within_the_budget(hopeful, taken, more):
    assert Restarts(successes=2, max_runs=10).runs_to_add(hopeful, taken) == more


def _run(seed: int, failed: bool, wall_time_s: float) -> RestartRun:
    return RestartRun(seed, f"out/seed-{seed}", failed, None, 10, 0.5, wall_time_s)


def test_the_tally_counts_successes_and_the_compute_per_success():
    tally = RestartsTally(Restarts(2, 4), (_run(0, True, 10.0), _run(1, False, 20.0), _run(2, False, 30.0)))
    written = tally.to_dict()
    assert (tally.successes, tally.runs_to_add()) == (2, 0)
    assert written["compute_s"] == 60.0 and written["compute_per_success_s"] == 30.0
    assert [run["seed"] for run in written["runs"]] == [0, 1, 2]
    assert RestartsTally(Restarts(1, 2), (_run(0, True, 5.0),)).to_dict()["compute_per_success_s"] is None
    assert RestartsTally(Restarts(1, 2), (_run(0, True, 5.0), _run(1, True, 5.0))).runs_to_add() == 0
