"""Early failure: a run whose training loss is still at the level of knowing nothing but the label prior.

A classifier that has learned nothing from its inputs does best by predicting the label prior; its
cross-entropy is then the entropy of that prior, H(p) = −Σ p_c log p_c (ln 2 ≈ 0.693 for two balanced
classes). Failed fine-tuning runs sit at that level from early on (Mosbach et al. 2021, Fig. 2), so a run
still there after a share of its steps is flagged — and, if asked, stopped — long before its final evaluation.
For regression the level is the variance of the targets (the mean squared error of predicting their mean).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import DiagnosticCallback

__all__ = ["EarlyFailureCallback", "prior_loss"]

logger = logging.getLogger(__name__)


def prior_loss(labels: Sequence[float], *, regression: bool = False) -> float:
    """The training loss of a model that knows only the labels' distribution: H(prior) in nats, or the variance."""
    values = np.asarray(labels)
    if regression:
        return float(np.var(values.astype(np.float64)))
    _, counts = np.unique(values, return_counts=True)
    prior = counts / counts.sum()
    return float(-(prior * np.log(prior)).sum())


class EarlyFailureCallback(DiagnosticCallback):
    """Flag a run whose training loss is still at the prior's level after a share of training.

    At the first optimizer step at or past ``after`` × the run's steps, the mean loss of the last ``window``
    steps is compared with ``baseline_loss`` (see :func:`prior_loss`): a mean ≥ ``baseline_loss`` × (1 −
    ``margin``) flags the run (a warning, ``early_failure/flagged`` in the logs, the verdict in
    :meth:`report`), and with ``stop=True`` ends training there.

    Args:
        baseline_loss: the loss of predicting the label prior.
        after: share of the run's optimizer steps after which to judge, in (0, 1].
        margin: relative distance below the baseline a loss must reach to count as learning.
        window: number of recent step losses averaged (default: 10 % of the steps before the check, at least 1).
        stop: stop a flagged run.
    """

    needs_step_loss = True

    def __init__(
        self,
        baseline_loss: float,
        after: float = 0.3,
        margin: float = 0.02,
        window: int | None = None,
        stop: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < after <= 1.0 or not 0.0 <= margin < 1.0 or baseline_loss <= 0:
            raise ValueError(
                "EarlyFailureCallback needs baseline_loss > 0, after in (0, 1] and margin in [0, 1)."
            )
        self.baseline_loss = baseline_loss
        self.after = after
        self.margin = margin
        self.window = window
        self.stop = stop
        self._losses: deque[float] = deque()
        self.verdict: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        check_step = max(1, math.ceil(self.after * state.max_steps))
        self._losses = deque(maxlen=self.window or max(1, check_step // 10))

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        loss = self.take_step_loss()
        if self.verdict is not None:
            return
        self._losses.append(loss)
        step = state.global_step + 1
        if step < self.after * state.max_steps:
            return
        mean_loss = float(np.mean(self._losses))
        flagged = not mean_loss < self.baseline_loss * (1 - self.margin)  # NaN counts as flagged
        self.verdict = {
            "flagged": flagged,
            "step": step,
            "mean_loss": mean_loss,
            "baseline_loss": self.baseline_loss,
            "window": len(self._losses),
            "stopped": flagged and self.stop,
        }
        self._pending["early_failure/flagged"] = float(flagged)
        control.should_log = True
        if flagged:
            logger.warning(
                "Early failure at step %d: the mean training loss of the last %d steps, %.4f, is still at the "
                "label prior's %.4f — the model has not learned from its inputs.%s",
                step,
                len(self._losses),
                mean_loss,
                self.baseline_loss,
                " Stopping." if self.stop else "",
            )
            if self.stop:
                control.should_training_stop = True

    def report(self) -> dict[str, Any]:
        return {"early_failure": self.verdict}
