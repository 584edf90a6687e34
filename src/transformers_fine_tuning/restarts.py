"""Restarts until success, defined once for the fine-tune job (``--restarts N --max_runs M``) and seed studies
(``restarts: {successes: N, max_runs: M}``).

Devlin et al. 2019 (Sec. 4.1) restarted fine-tuning on small data sets with other seeds and kept the best run on
dev. Here seeds are drawn in order until ``successes`` runs did not fail, or ``max_runs`` were tried; the job
runs them one after another, a study as many at once as successes are still needed. What the restarts cost is
the compute per success, which the job's ``restarts.json`` and the study's table both report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RESTARTS_FILE", "RestartRun", "Restarts", "RestartsTally"]

RESTARTS_FILE = "restarts.json"
"""The job's tally of its restarts, in ``--output_dir`` (:meth:`RestartsTally.to_dict`)."""


@dataclass(frozen=True)
class Restarts:
    """Seeds in order until ``successes`` runs did not fail, at most ``max_runs`` runs."""

    successes: int
    max_runs: int

    def runs_to_add(self, hopeful: int, taken: int) -> int:
        """How many more runs to start, given the ``taken`` runs so far, ``hopeful`` of which did not fail or are
        still running: enough to reach ``successes`` if they all succeed, never past ``max_runs`` in all."""
        return max(0, min(self.successes - hopeful, self.max_runs - taken))


@dataclass(frozen=True)
class RestartRun:
    """One run of the job's restarts, as ``restarts.json`` lists it."""

    seed: int
    output_dir: str
    failed: bool
    stopped_early: str | None
    global_step: int
    main_metric: float | None
    wall_time_s: float | None


@dataclass(frozen=True)
class RestartsTally:
    """The runs of a job's restarts so far, and the compute each success cost."""

    restarts: Restarts
    runs: tuple[RestartRun, ...] = ()

    @property
    def successes(self) -> int:
        return sum(not run.failed for run in self.runs)

    def runs_to_add(self) -> int:
        """More runs to start now (the job's runs have all finished: only successes are hopeful)."""
        return self.restarts.runs_to_add(hopeful=self.successes, taken=len(self.runs))

    def to_dict(self) -> dict[str, Any]:
        """``restarts.json``: the target, every run, the successes and the compute (s) in all and per success."""
        compute_s = sum(run.wall_time_s or 0.0 for run in self.runs)
        return {
            "restarts": self.restarts.successes,
            "max_runs": self.restarts.max_runs,
            "runs": [asdict(run) for run in self.runs],
            "successes": self.successes,
            "compute_s": compute_s,
            "compute_per_success_s": compute_s / self.successes if self.successes else None,
        }
