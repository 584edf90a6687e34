"""The contract between diagnostic callbacks and :class:`~transformers_fine_tuning.TrainerOptimizerInit`.

A diagnostic is an ordinary ``TrainerCallback`` that also needs two things the Trainer's events do not give a
callback: the training loss of every optimizer step (the Trainer only logs a running mean every
``logging_steps``) and a way to put its values into the Trainer's own logs, so that ``report_to``
(TensorBoard, W&B, MLflow) receives them with the loss. ``TrainerOptimizerInit`` feeds
:meth:`DiagnosticCallback.observe_loss` from ``training_step`` and merges :meth:`DiagnosticCallback.pop_logs`
into every ``Trainer.log`` call.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

__all__ = ["DiagnosticCallback", "save_model_and_optimizer"]


def save_model_and_optimizer(directory: Path, model: Any, optimizer: Any, state: Any) -> Path:
    """Save the weights (``save_pretrained``) and the optimizer state (``optimizer.pt``) into ``directory`` — on
    the main process only, as the Trainer saves its checkpoints; every process gets the path."""
    if state.is_world_process_zero:
        getattr(model, "module", model).save_pretrained(directory)  # without a DDP wrapper
        inner = getattr(optimizer, "optimizer", optimizer)  # without Accelerate's wrapper
        if inner is not None:
            torch.save(inner.state_dict(), directory / "optimizer.pt")
    return directory


class DiagnosticCallback(TrainerCallback):
    """Base class: accumulates the per-step training loss and holds values waiting to be logged."""

    #: True when the callback reads the per-step loss: the Trainer then feeds :meth:`observe_loss`.
    needs_step_loss: bool = False
    _bound: bool = False

    def __init__(self) -> None:
        self._loss_sum: torch.Tensor | None = None
        self._pending: dict[str, float] = {}

    def observe_loss(self, loss: torch.Tensor) -> None:
        """Add one micro-batch's loss (already divided by the accumulation steps, as the Trainer returns it)."""
        detached = loss.detach()
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached

    def take_step_loss(self) -> float:
        """The training loss of the optimizer step being taken (NaN if none was observed); resets the sum."""
        loss, self._loss_sum = self._loss_sum, None
        return math.nan if loss is None else float(loss.float().item())

    def pop_logs(self) -> dict[str, float]:
        """Values to add to the next ``Trainer.log`` call."""
        logs, self._pending = self._pending, {}
        return logs

    def bind(self) -> None:
        """Called by :class:`~transformers_fine_tuning.TrainerOptimizerInit` when it takes charge of this callback."""
        self._bound = True

    def report(self) -> dict[str, Any]:
        """What this diagnostic found, for ``results.json``."""
        return {}

    def on_train_begin(self, args, state, control, **kwargs):
        if not self._bound:
            raise RuntimeError(
                f"{type(self).__name__} needs transformers_fine_tuning.TrainerOptimizerInit, which feeds it the loss "
                "of every step and puts its values in the Trainer's logs; a plain transformers.Trainer cannot."
            )
