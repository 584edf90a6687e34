"""How well an early test predicts a run's final verdict, measured on a study that ran without pruning.

Pruning stops a run that an early test flags as failing, to spend the budget on the other seeds. Whether it is
worth it is a measurement: on a finished study (pruning off, ``--diagnostics`` on, so that the training-loss test
records its verdict), for each candidate test, against the final failed-run label:

* **precision** — of the runs the test would have stopped, the share that did end failed (1 − precision of them
  were successes thrown away);
* **recall** — of the runs that ended failed, the share the test would have stopped;
* **compute saved** — the training time the stopped runs would not have spent after the test (each run's wall
  time × the share of its steps after the step the test judged at), in all and as a share of the study.

The candidates. Absolute tests judge each run alone: ``loss`` — the training loss still at the label prior's after
a share of the steps (:class:`~transformers_fine_tuning.diagnostics.EarlyFailureCallback`, its recorded
verdict); ``dev`` — the first dev evaluation no better than the best constant predictor's score on that split
(from the recorded evaluations, as :class:`~transformers_fine_tuning.diagnostics.DevFailureCallback` judges it);
``both`` — either of the two, at the earlier of their steps. An absolute early test cannot tell a slow starter
from a dead run: a small model that learns late looks failed at its first evaluation.

The relative test compares runs with each other (Dodge et al. 2020, "Fine-Tuning Pretrained Language Models:
Weight Initializations, Data Orders, and Early Stopping", Sec. 5: start many runs, evaluate them early, continue
the most promising): ``relative f keep p`` — among the runs of one task × recipe, at the first evaluation at or
after a share ``f`` of the training steps, continue the best ``ceil(p·t)`` of the ``t`` runs by the main metric
and stop the rest (one rung of successive halving). Since it stops a share of the runs whatever they score, its
precision is not the point; what it must not do is stop the run that would have ended best: ``best kept`` counts
the task × recipe groups whose best final run it continued.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...failure import at_or_below
from ..run.store import COMPLETED, RunRecord

__all__ = [
    "PruningMeasurement",
    "early_verdicts",
    "measure_pruning",
    "measure_relative_pruning",
    "relative_verdicts",
    "render_pruning",
]


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
    groups: int | None = None
    best_kept: int | None = None

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
    if first is not None and run.constant_baseline is not None:
        value = first.metrics[run.main_metric_name]
        dev_step = first.step if at_or_below(value, run.constant_baseline) else None
    return {"loss": loss_step, "dev": dev_step}


def measure_pruning(runs: Sequence[RunRecord]) -> list[PruningMeasurement]:
    """Precision, recall and compute saved of the ``loss``, ``dev`` and ``both`` tests on the completed runs."""
    completed = _completed(runs)
    measurements = []
    for test in ("loss", "dev", "both"):
        stops = {}
        for run in completed:
            steps = early_verdicts(run)
            judged = [step for name, step in steps.items() if step is not None and test in (name, "both")]
            if judged:
                stops[run.run_id] = min(judged)
        measurements.append(_measurement(test, completed, stops))
    return measurements


def _completed(runs: Sequence[RunRecord]) -> list[RunRecord]:
    return [run for run in runs if run.status == COMPLETED and run.failed_run is not None]


def _measurement(
    test: str, completed: Sequence[RunRecord], stops: dict[str, int], **extra: int
) -> PruningMeasurement:
    """The measurement of a test that would have stopped the runs ``stops`` names at the steps it gives."""
    stopped = [run for run in completed if run.run_id in stops]
    saved = sum(
        (run.wall_time_s or 0.0) * max(0.0, 1 - stops[run.run_id] / run.global_step)
        for run in stopped
        if run.global_step
    )
    return PruningMeasurement(
        test=test,
        runs=len(completed),
        failed=sum(bool(run.failed_run) for run in completed),
        flagged=len(stopped),
        true_positives=sum(bool(run.failed_run) for run in stopped),
        compute_s=float(sum(run.wall_time_s or 0.0 for run in completed)),
        saved_s=float(saved),
        **extra,
    )


def _score(value: float | None) -> float:
    """A metric value for ranking: a missing or non-finite one ranks last."""
    return float(value) if value is not None and math.isfinite(float(value)) else -math.inf


def _value_at(run: RunRecord, fraction: float) -> tuple[int, float] | None:
    """(step, main metric) of the run's first evaluation at or after ``fraction`` of its steps."""
    if not run.global_step:
        return None
    points = sorted(
        (e.step, _score(e.metrics.get(run.main_metric_name)))
        for e in run.evaluations
        if e.split == run.main_metric_split and e.step >= fraction * run.global_step
    )
    return points[0] if points and points[0][0] < run.global_step else None


def relative_verdicts(runs: Sequence[RunRecord], fraction: float, keep: float) -> dict[str, int]:
    """The runs the relative test stops, as ``{run_id: step}``: per task × recipe, at the first evaluation at or
    after ``fraction`` of the training steps, all but the best ``ceil(keep · t)`` of its ``t`` runs (ties: the
    study's order). Runs with no evaluation before their last step are never stopped."""
    if not 0 < fraction < 1 or not 0 < keep <= 1:
        raise ValueError(f"fraction must be in (0, 1) and keep in (0, 1], got {fraction} and {keep}")
    stops: dict[str, int] = {}
    for group in _groups(runs).values():
        judged = [(run, point) for run in group if (point := _value_at(run, fraction)) is not None]
        ranked = sorted(judged, key=lambda item: -item[1][1])  # stable: the study's order breaks ties
        for run, (step, _) in ranked[max(1, math.ceil(keep * len(group))) :]:
            stops[run.run_id] = step
    return stops


def _groups(runs: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.task, run.recipe), []).append(run)
    return groups


def measure_relative_pruning(
    runs: Sequence[RunRecord], fractions: Sequence[float] = (0.2, 0.35, 0.5), keep: float = 0.5
) -> list[PruningMeasurement]:
    """Precision, recall, compute saved and best runs kept of the relative test at each of ``fractions``."""
    completed = _completed(runs)
    groups = _groups(completed)
    measurements = []
    for fraction in fractions:
        stops = relative_verdicts(completed, fraction, keep)
        best_kept = sum(
            max(group, key=lambda run: _score(run.main_metric)).run_id not in stops
            for group in groups.values()
        )
        measurements.append(
            _measurement(
                f"relative f={fraction:g} keep {keep:g}",
                completed,
                stops,
                groups=len(groups),
                best_kept=best_kept,
            )
        )
    return measurements


def render_pruning(measurements: Sequence[PruningMeasurement]) -> str:
    """The measurement as a Markdown table."""

    def share(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    lines = [
        "| early test | runs stopped | precision | recall | successes lost | best run kept | compute saved |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        saved = f"{m.saved_s / 3600:.2f} h ({m.saved_s / m.compute_s:.0%})" if m.compute_s else "–"
        kept = "–" if m.best_kept is None else f"{m.best_kept} of {m.groups}"
        lines.append(
            f"| {m.test} | {m.flagged} of {m.runs} | {share(m.precision)} | {share(m.recall)} | "
            f"{m.successes_lost} | {kept} | {saved} |"
        )
    if measurements:
        m = measurements[0]
        lines += [
            "",
            f"{m.failed} of the {m.runs} completed runs ended failed; compute in all {m.compute_s / 3600:.2f} h. "
            "Best run kept: the task × recipe groups whose best final run the test would have continued.",
        ]
    return "\n".join(lines)
