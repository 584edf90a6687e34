"""The summary's "Where the time went": the runs' timings added up beside the runner's wall time."""

from __future__ import annotations

import pytest

from transformers_fine_tuning.study.analysis.costs import study_costs
from transformers_fine_tuning.study.report.markdown import render_costs
from transformers_fine_tuning.study.run.store import RunRecord


def run(
    seed: int, wall_time_s: float | None, timings: dict | None = None, status: str = "completed"
) -> RunRecord:
    return RunRecord(
        run_id=f"rte/devlin2019/seed{seed}",
        position=seed,
        task="rte",
        recipe="devlin2019",
        seed=seed,
        data_seed=seed,
        output_dir="/nowhere",
        config_hash="0",
        argv=(),
        status=status,
        wall_time_s=wall_time_s,
        timings=timings or {},
    )


TIMINGS = {
    "startup_s": 6.0,
    "parse_s": 0.5,
    "checks_s": 0.5,
    "data_s": 1.0,
    "tokenize_s": 2.0,
    "model_s": 1.5,
    "trainer_s": 0.5,
    "training_s": 60.0,
    "evaluation_s": 15.0,
    "final_evaluation_s": 5.0,
    "save_s": 0.0,
    "other_s": 1.0,
    "evaluations_s": [7.5, 7.5],
    "total_s": 93.0,
}


def test_phases_add_up_and_what_the_job_did_not_see_is_outside_it():
    runs = [
        run(0, 95.0, TIMINGS),
        run(1, 97.0, TIMINGS),
        run(2, 40.0, status="error"),  # executed before timings were kept: counted in compute only
        run(3, None, status="pending"),  # never ran
    ]
    costs = study_costs(runs)
    assert (costs.runs, costs.compute_s, costs.timed_runs, costs.timed_compute_s) == (3, 232.0, 2, 192.0)
    assert costs.phases == {
        "start-up and imports": 14.0,
        "data: loading and tokenising": 6.0,
        "model and Trainer": 4.0,
        "training": 120.0,
        "evaluation": 40.0,
        "writing and the rest": 2.0,
        "outside the job": 2.0 + 4.0,
    }
    assert sum(costs.phases.values()) == pytest.approx(costs.timed_compute_s)
    assert costs.outside_training_share == pytest.approx(1 - 120 / 192)
    lines = render_costs(costs)
    assert "Compute: 0:03:52 of run wall time over 3 runs (mean 77.3 s per run)." in lines
    assert "Outside the training loop: 38% of the 2 timed runs' wall time." in lines
    assert "| evaluation | 0:00:40 | 20.0 s | 20.8% |" in lines


def test_a_study_that_ran_nothing_has_no_section_and_old_results_say_so():
    assert render_costs(study_costs([run(0, None, status="pending")])) == []
    lines = render_costs(study_costs([run(0, 50.0)]))
    assert lines[-2] == "No run recorded its timings (results written before they were kept)."
