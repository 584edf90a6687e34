"""Loss spikes: a step whose training loss jumps far above the recent ones.

Large-model trainers watch for them and keep the weights from just before one, so the spike can be studied
(or training restarted from there with another data order). The statistic is robust — median and median
absolute deviation (MAD) of a window of recent step losses — so that one spike does not hide the next.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from statistics import median
from typing import Any

from .base import DiagnosticCallback, save_model_and_optimizer

__all__ = ["LossSpikeCallback", "LossSpikeDetector"]

# MAD × 1.4826 estimates the standard deviation of normally distributed values.
_MAD_TO_STD = 1.4826


class LossSpikeDetector:
    """Flags a value more than ``threshold`` robust standard deviations above the median of the last ``window``.

    The robust z-score is (loss − median) / max(1.4826·MAD, ``min_scale``·|median|, 1e-12); ``min_scale``
    keeps a flat loss curve (MAD ≈ 0) from turning noise into spikes. Nothing is flagged until the window has
    ``min_history`` values. Spikes are not added to the window.
    """

    def __init__(
        self, window: int = 50, threshold: float = 6.0, min_history: int = 10, min_scale: float = 0.02
    ):
        if window < 2 or threshold <= 0 or min_history < 2:
            raise ValueError("LossSpikeDetector needs window >= 2, threshold > 0 and min_history >= 2.")
        self.threshold = threshold
        self.min_history = min(min_history, window)
        self.min_scale = min_scale
        self.history: deque[float] = deque(maxlen=window)

    def score(self, loss: float) -> float:
        """The robust z-score of ``loss`` against the window (0 while the window is too short)."""
        if len(self.history) < self.min_history:
            return 0.0
        center = median(self.history)
        mad = median(abs(value - center) for value in self.history)
        scale = max(_MAD_TO_STD * mad, self.min_scale * abs(center), 1e-12)
        return (loss - center) / scale

    def update(self, loss: float) -> float | None:
        """Score ``loss``; return the score if it is a spike, else record it and return ``None``."""
        if not math.isfinite(loss):
            return None  # the non-finite guard's business
        score = self.score(loss)
        if score > self.threshold:
            return score
        self.history.append(loss)
        return None


class LossSpikeCallback(DiagnosticCallback):
    """Detect training-loss spikes, log each one, and optionally save the weights from just before it.

    The loss of step t is computed with the weights left by step t − 1; the spike is detected after the
    backward pass of step t and before its optimizer update, so the checkpoint saved then
    (``<output_dir>/spike-step-<t-1>/``: the model via ``save_pretrained`` and ``optimizer.pt``) is exactly the
    state of the step before the spike.

    Args:
        window: number of recent step losses in the robust statistic.
        threshold: robust z-score above which a loss is a spike.
        save_checkpoint: save the state before each spike.
        max_checkpoints: at most this many spike checkpoints per run.
    """

    needs_step_loss = True

    def __init__(
        self,
        window: int = 50,
        threshold: float = 6.0,
        save_checkpoint: bool = False,
        max_checkpoints: int = 3,
    ) -> None:
        super().__init__()
        self.detector = LossSpikeDetector(window=window, threshold=threshold)
        self.save_checkpoint = save_checkpoint
        self.max_checkpoints = max_checkpoints
        self.spikes: list[dict[str, Any]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        step = state.global_step + 1
        loss = self.take_step_loss()
        score = self.detector.update(loss)
        if score is None:
            return
        spike: dict[str, Any] = {"step": step, "loss": loss, "score": score}
        if self.save_checkpoint and sum("checkpoint" in s for s in self.spikes) < self.max_checkpoints:
            directory = Path(args.output_dir) / f"spike-step-{step - 1}"
            spike["checkpoint"] = str(save_model_and_optimizer(directory, model, optimizer, state))
        self.spikes.append(spike)
        self._pending.update({"loss_spike/loss": loss, "loss_spike/score": score})
        control.should_log = True

    def report(self) -> dict[str, Any]:
        return {"loss_spikes": self.spikes}
