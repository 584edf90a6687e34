"""Dev failure: a run whose first dev evaluation is no better than the best constant prediction.

The failed-run test of Mosbach et al. 2021 (final main metric ≤ the best constant predictor's on the evaluated
split, :mod:`transformers_fine_tuning.failure`) applied at the
first evaluation instead of the last: a run that has learned nothing its dev set can see by then is flagged —
and, with ``stop=True``, stopped there, which is how a seed study prunes failing seeds to spend its budget on
the rest (Dodge et al. 2020, "Fine-Tuning Pretrained Language Models: Weight Initializations, Data Orders, and
Early Stopping", Sec. 5). Whether this test or the training-loss test of :mod:`.early_failure` predicts the final
verdict better is a measurement, not an assumption: docs/evidence.md ("Pruning, measured") gives it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..failure import at_or_below
from .base import DiagnosticCallback

__all__ = ["DevFailureCallback"]

logger = logging.getLogger(__name__)


class DevFailureCallback(DiagnosticCallback):
    """Flag (and with ``stop=True`` stop) a run whose first evaluation of ``metric`` on ``split`` is ≤ ``baseline``.

    Args:
        metric: the main metric's name (``accuracy``, ``f1``...), as ``compute_metrics`` returns it.
        split: the evaluation split it is read on (the ``eval_dataset`` key).
        baseline: the best constant predictor's value of the metric on that split.
        stop: stop a flagged run.
    """

    def __init__(self, metric: str, split: str, baseline: float, *, stop: bool = False) -> None:
        super().__init__()
        self.key = f"eval_{split}_{metric}"
        self.baseline = baseline
        self.stop = stop
        self.verdict: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        """No per-step needs: works with a plain ``Trainer`` too."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.verdict is not None or not metrics or self.key not in metrics:
            return
        value = float(metrics[self.key])
        flagged = at_or_below(value, self.baseline)  # NaN counts as flagged
        self.verdict = {
            "flagged": flagged,
            "step": state.global_step,
            "value": value,
            "baseline": self.baseline,
            "stopped": flagged and self.stop,
        }
        if flagged:
            logger.warning(
                "Dev failure at step %d: %s = %.4f is no better than the best constant prediction's %.4f.%s",
                state.global_step,
                self.key,
                value,
                self.baseline,
                " Stopping." if self.stop else "",
            )
            if self.stop:
                control.should_training_stop = True

    def report(self) -> dict[str, Any]:
        return {"dev_failure": self.verdict}
