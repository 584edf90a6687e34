"""Which score of a run a study summarises: its final one, or its best evaluation during training.

``tft-study summary --score best`` (or ``score: best`` in the study file) summarises each completed run's best
evaluation (:mod:`~transformers_fine_tuning.best`) in place of its final score: chosen on the held-out split the
run set aside (``--best_held_out``), else on the reported split itself — optimistic, and the summary says which.
A run is then judged failed by :func:`~transformers_fine_tuning.failure.judge` on that score: stopped on a
non-finite value or pruned, or at or below the best constant predictor's score (the one-class rule reads the final
predictions, which a best evaluation does not keep, so it is not applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ...best import BEST_HELD_OUT, best_score
from ...failure import judge
from ..run.spec import SCORES
from ..run.store import COMPLETED, RunRecord

__all__ = ["SCORES", "score_note", "scored_runs"]


def scored_runs(runs: Sequence[RunRecord], score: str = "final") -> list[RunRecord]:
    """``runs`` with each completed run's main metric (and failed-run verdict) the ``score`` asked for."""
    if score not in SCORES:
        raise ValueError(f"score {score!r}: a study summarises one of {', '.join(SCORES)}")
    if score == "final":
        return list(runs)
    return [_at_best(run) if run.status == COMPLETED else run for run in runs]


def _at_best(run: RunRecord) -> RunRecord:
    if run.main_metric_name is None or run.main_metric_split is None:
        return run
    held_out = any(evaluation.split == BEST_HELD_OUT for evaluation in run.evaluations)
    best = best_score(
        run.evaluations,
        run.main_metric_name,
        run.main_metric_split,
        select_on=BEST_HELD_OUT if held_out else None,
    )
    if best is None:  # never evaluated during training: its final score is its best
        return run
    verdict = judge(  # no predictions of that step: the one-class rule is not applied
        metric=run.main_metric_name,
        split=run.main_metric_split,
        value=best.value,
        baseline=run.constant_baseline,
        stopped_early=run.stopped_early,
        pruned=run.pruned,
    )
    return replace(run, main_metric=best.value, failed_run=verdict.failed, failure_rule=verdict.rule)


def score_note(runs: Sequence[RunRecord], score: str) -> str | None:
    """The sentence a summary of ``score`` adds to each task's verdict (``None`` for the final score)."""
    if score == "final":
        return None
    held_out = sum(any(e.split == BEST_HELD_OUT for e in run.evaluations) for run in runs)
    completed = sum(run.status == COMPLETED for run in runs)
    chosen = (
        "chosen on the held-out part of each run's training data"
        if held_out and held_out >= completed
        else "chosen on the reported split itself — optimistic (fine-tune with --best_held_out to choose it on "
        "held-out training data)"
        if not held_out
        else f"chosen on held-out training data in {held_out} of {completed} runs, else on the reported split"
    )
    return (
        f"Scores are each run's best evaluation during training, not its final one, {chosen}; the one-class rule is "
        "not applied to them."
    )
