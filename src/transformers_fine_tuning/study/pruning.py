"""How well an early test predicts a run's final verdict, measured on a study that ran without pruning.

Pruning stops a run that an early test flags as failing, to spend the budget on the other seeds. Whether it is
worth it is a measurement: on a finished study (pruning off, ``--diagnostics`` on, so that the training-loss test
records its verdict), for each candidate test, against the final failed-run label:

* **precision** — of the runs the test would have stopped, the share that did end failed (1 − precision of them
  were successes thrown away);
* **recall** — of the runs that ended failed, the share the test would have stopped;
* **compute saved** — the training time the stopped runs would not have spent after the test (each run's wall
  time × the share of its steps after the step the test judged at), in all and as a share of the study.

The candidates: ``loss`` — the training loss still at the label prior's after a share of the steps
(:class:`~transformers_fine_tuning.diagnostics.EarlyFailureCallback`, its recorded verdict); ``dev`` — the first dev
evaluation no better than the majority-class baseline (from the recorded evaluations, as
:class:`~transformers_fine_tuning.diagnostics.DevFailureCallback` judges it); ``both`` — either of the two, at the
earlier of their steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .store import COMPLETED, RunRecord

__all__ = ["PruningMeasurement", "early_verdicts", "measure_pruning", "render_pruning"]


@dataclass(frozen=True)
class PruningMeasurement:
    """One candidate test against the final verdicts of ``runs`` completed runs (``nan``-free counts)."""

    test: str
    runs: int
    failed: int
    flagged: int
    true_positives: int
    compute_s: float
    saved_s: float

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.flagged if self.flagged else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.failed if self.failed else None

    @property
    def successes_lost(self) -> int:
        return self.flagged - self.true_positives


def early_verdicts(run: RunRecord) -> dict[str, int | None]:
    """``{"loss": step or None, "dev": step or None}``: the step at which each test flags ``run``, ``None`` where
    it does not flag it (or could not judge it: no loss verdict recorded, no evaluation)."""
    loss = (run.diagnostics.get("early_failure") or {}) if run.diagnostics else {}
    loss_step = loss.get("step") if loss.get("flagged") else None
    first = min(
        (
            e
            for e in run.evaluations
            if e.split == run.main_metric_split and run.main_metric_name in e.metrics
        ),
        key=lambda e: e.step,
        default=None,
    )
    dev_step = None
    if first is not None and run.majority_baseline is not None:
        value = first.metrics[run.main_metric_name]
        dev_step = first.step if value is None or not value > run.majority_baseline else None
    return {"loss": loss_step, "dev": dev_step}


def measure_pruning(runs: Sequence[RunRecord]) -> list[PruningMeasurement]:
    """Precision, recall and compute saved of the ``loss``, ``dev`` and ``both`` tests on the completed runs."""
    completed = [run for run in runs if run.status == COMPLETED and run.failed_run is not None]
    measurements = []
    for test in ("loss", "dev", "both"):
        flagged = true_positives = 0
        saved = 0.0
        for run in completed:
            steps = early_verdicts(run)
            judged = [step for name, step in steps.items() if step is not None and test in (name, "both")]
            if not judged:
                continue
            flagged += 1
            true_positives += bool(run.failed_run)
            total = run.global_step or 0
            if total:
                saved += (run.wall_time_s or 0.0) * max(0.0, 1 - min(judged) / total)
        measurements.append(
            PruningMeasurement(
                test=test,
                runs=len(completed),
                failed=sum(bool(run.failed_run) for run in completed),
                flagged=flagged,
                true_positives=true_positives,
                compute_s=float(sum(run.wall_time_s or 0.0 for run in completed)),
                saved_s=saved,
            )
        )
    return measurements


def render_pruning(measurements: Sequence[PruningMeasurement]) -> str:
    """The measurement as a Markdown table."""

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    lines = [
        "| early test | runs flagged | precision | recall | successes lost | compute saved |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        saved = f"{m.saved_s / 3600:.2f} h ({m.saved_s / m.compute_s:.0%})" if m.compute_s else "–"
        lines.append(
            f"| {m.test} | {m.flagged} of {m.runs} | {share(m.precision)} | {share(m.recall)} | "
            f"{m.successes_lost} | {saved} |"
        )
    if measurements:
        m = measurements[0]
        lines += [
            "",
            f"{m.failed} of the {m.runs} completed runs ended failed; compute in all {m.compute_s / 3600:.2f} h.",
        ]
    return "\n".join(lines)
