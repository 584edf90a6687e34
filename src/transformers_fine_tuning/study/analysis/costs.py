"""What a study cost, and where the time went: the runs' ``timings`` (see :mod:`transformers_fine_tuning.timings`)
added up, beside the wall time the runner measured around each run.

A seed study is many short runs, so what each spends outside its training loop — the interpreter and the imports,
loading and tokenising the data, loading the model, the evaluations, writing — is paid once per run. The summary
(:func:`..report.markdown.render_costs`) shows it as shares of the study's compute so that it can be cut where it is large.
What the runner measured beyond the job's own total (``outside the job``) is the process's start before Python runs
and its exit after ``results.json`` is written (the interpreter tearing torch down), or a Ray task's scheduling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..run.store import RunRecord

__all__ = ["PHASES", "StudyCosts", "study_costs"]

#: The phases of ``results.json``'s ``timings`` as the summary groups them, in the order a run spends them.
PHASES: dict[str, tuple[str, ...]] = {
    "start-up and imports": ("startup_s", "parse_s", "checks_s"),
    "data: loading and tokenising": ("data_s", "tokenize_s"),
    "model and Trainer": ("model_s", "trainer_s"),
    "training": ("training_s",),
    "evaluation": ("evaluation_s", "final_evaluation_s"),
    "writing and the rest": ("save_s", "other_s"),
}


@dataclass(frozen=True)
class StudyCosts:
    """Seconds spent by a study's runs (completed or ended in an error), summed.

    ``compute_s`` is the runner's wall time of every run it timed; ``phases`` the :data:`PHASES` groups over the
    runs whose results carry timings (``timed_runs`` of them, ``timed_compute_s`` their wall time), with
    ``outside the job`` the part of their wall time the job's own clock did not see.
    """

    runs: int
    compute_s: float
    timed_runs: int = 0
    timed_compute_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def outside_training_share(self) -> float | None:
        """The share of the timed runs' wall time spent anywhere but the training loop; ``None`` without any."""
        if not self.timed_compute_s:
            return None
        return 1.0 - self.phases.get("training", 0.0) / self.timed_compute_s


def study_costs(runs: Sequence[RunRecord]) -> StudyCosts:
    """Add up the wall time and the phases of the runs that were executed (those with a wall time)."""
    executed = [run for run in runs if run.wall_time_s is not None]
    timed = [run for run in executed if run.timings.get("total_s") is not None]
    phases = {group: 0.0 for group in PHASES}
    phases["outside the job"] = 0.0
    for run in timed:
        for group, keys in PHASES.items():
            phases[group] += sum(float(run.timings.get(key) or 0.0) for key in keys)
        phases["outside the job"] += max(0.0, run.wall_time_s - float(run.timings["total_s"]))
    return StudyCosts(
        runs=len(executed),
        compute_s=sum(run.wall_time_s for run in executed),
        timed_runs=len(timed),
        timed_compute_s=sum(run.wall_time_s for run in timed),
        phases=phases if timed else {},
    )
