"""Stop a run whose loss or gradients have turned NaN or infinite — at once, with a message and a trace."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from .base import DiagnosticCallback, save_model_and_optimizer

__all__ = ["NonFiniteGuardCallback"]

logger = logging.getLogger(__name__)

_LIKELY_CAUSES = (
    "a learning rate too high for this model (lower --learning_rate or lengthen the warm-up), an fp16 overflow "
    "(use bf16, or keep fp16's loss scaling on), Adam's epsilon too small for the precision, or a corrupted "
    "batch (empty or out-of-vocabulary inputs)"
)


class NonFiniteGuardCallback(DiagnosticCallback):
    """Stop training at the first step whose loss or gradient norm is NaN or infinite.

    The check runs after the backward pass and before the optimizer update, so the bad update is never
    applied: the gradients are dropped (an optimizer skips parameters without one), training stops, and the
    weights stay those of the last good step. With ``save_state`` those weights and the optimizer state go to
    ``<output_dir>/non-finite-step-<t>/`` with ``event.json`` (step, loss, gradient norm, the message).
    The fine-tune job then marks the run failed in ``results.json``.
    """

    needs_step_loss = True

    def __init__(self, save_state: bool = True) -> None:
        super().__init__()
        self.save_state = save_state
        self.event: dict[str, Any] | None = None

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        loss = self.take_step_loss()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        grad_norm = torch.stack(torch._foreach_norm(grads)).float().norm().item() if grads else 0.0
        if math.isfinite(loss) and math.isfinite(grad_norm):
            return
        step = state.global_step + 1
        what = " and ".join(
            name for name, value in (("loss", loss), ("gradient norm", grad_norm)) if not math.isfinite(value)
        )
        message = (
            f"Non-finite {what} at step {step} (loss {loss}, gradient norm {grad_norm}): training stopped before "
            f"the update, with the weights of step {step - 1}. Likely causes: {_LIKELY_CAUSES}."
        )
        logger.error(message)
        self.event = {"step": step, "loss": loss, "grad_norm": grad_norm, "message": message}
        for param in model.parameters():
            param.grad = None
        if self.save_state:
            directory = save_model_and_optimizer(
                Path(args.output_dir) / f"non-finite-step-{step}", model, optimizer, state
            )
            self.event["saved_to"] = str(directory)
            if state.is_world_process_zero:
                (directory / "event.json").write_text(json.dumps(self.event, indent=2, default=str))
        self._pending["non_finite/step"] = float(step)
        control.should_training_stop = True
        control.should_log = True

    def report(self) -> dict[str, Any]:
        return {"non_finite": self.event}
