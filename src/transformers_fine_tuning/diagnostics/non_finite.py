"""Stop a run whose loss or gradients have turned NaN or infinite — at once, with a message and a trace — or roll
it back to its last good state at a lower learning rate and go on; optionally roll back on loss spikes too."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from .base import DiagnosticCallback, save_model_and_optimizer
from .loss_spikes import LossSpikeDetector

__all__ = ["NonFiniteGuardCallback"]

logger = logging.getLogger(__name__)

_LIKELY_CAUSES = (
    "a learning rate too high for this model (lower --learning_rate or lengthen the warm-up), an fp16 overflow "
    "(use bf16, or keep fp16's loss scaling on), Adam's epsilon too small for the precision, or a corrupted "
    "batch (empty or out-of-vocabulary inputs)"
)


class NonFiniteGuardCallback(DiagnosticCallback):
    """Stop training at the first step whose loss or gradient norm is NaN or infinite — or roll back and retry.

    The check runs after the backward pass and before the optimizer update, so the bad update is never
    applied: the gradients are dropped (an optimizer skips parameters without one), training stops, and the
    weights stay those of the last good step. With ``save_state`` those weights and the optimizer state go to
    ``<output_dir>/non-finite-step-<t>/`` with ``event.json`` (step, loss, gradient norm, the message).
    The fine-tune job then marks the run failed in ``results.json``.

    With ``rollbacks=k`` the first k non-finite steps do not stop the run, as trainers of large runs do: the
    weights and the optimizer's state go back to the last good in-memory snapshot (taken every
    ``snapshot_every`` optimizer steps, on the host: one copy of the weights and of the optimizer's moments;
    L2-SP anchors never change and are not copied), every learning rate — and the schedule's base
    rates — is multiplied by ``lr_factor``, and training goes on with the next batches (the step counter is not
    rewound). Each roll-back is recorded (:attr:`rollbacks`, ``results.json``'s ``diagnostics``, with its
    ``cause``); the k + 1-th non-finite step stops the run as above.

    With ``spike_threshold=z`` a finite step loss more than z robust standard deviations above the median of the
    last ``spike_window`` ones (:class:`~.loss_spikes.LossSpikeDetector`, as :class:`~.LossSpikeCallback` flags
    them) is rolled back the same way, before its update, while roll-backs remain; once they are spent a spike is
    trained through (it is not fatal, as a non-finite value is).
    """

    needs_step_loss = True

    def __init__(
        self,
        save_state: bool = True,
        *,
        rollbacks: int = 0,
        lr_factor: float = 0.5,
        snapshot_every: int = 10,
        spike_threshold: float | None = None,
        spike_window: int = 50,
    ) -> None:
        if rollbacks < 0 or not 0.0 < lr_factor <= 1.0 or snapshot_every < 1:
            raise ValueError(
                "NonFiniteGuardCallback: rollbacks must be >= 0, lr_factor in (0, 1] and snapshot_every >= 1, got "
                f"{rollbacks}, {lr_factor}, {snapshot_every}."
            )
        if spike_threshold is not None and not rollbacks:
            raise ValueError(
                "NonFiniteGuardCallback: spike_threshold rolls back spikes; give rollbacks >= 1 too."
            )
        super().__init__()
        self.save_state = save_state
        self.max_rollbacks = rollbacks
        self.lr_factor = lr_factor
        self.snapshot_every = snapshot_every
        self.event: dict[str, Any] | None = None
        self.rollbacks: list[dict[str, Any]] = []
        self._snapshot: _Snapshot | None = None
        self._spikes = (
            None
            if spike_threshold is None
            else LossSpikeDetector(window=spike_window, threshold=spike_threshold)
        )

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, optimizer=optimizer, **kwargs)
        if self.max_rollbacks:
            self._snapshot = _Snapshot.take(model, optimizer, state.global_step)

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.max_rollbacks and state.global_step % self.snapshot_every == 0:
            self._snapshot = _Snapshot.take(model, optimizer, state.global_step)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        loss = self.take_step_loss()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        grad_norm = torch.stack(torch._foreach_norm(grads)).float().norm().item() if grads else 0.0
        step = state.global_step + 1
        can_roll_back = len(self.rollbacks) < self.max_rollbacks and self._snapshot is not None
        if math.isfinite(loss) and math.isfinite(grad_norm):
            spike = self._spikes is not None and can_roll_back and self._spikes.update(loss) is not None
            if spike:
                self._roll_back(
                    step, loss, grad_norm, model, optimizer, kwargs.get("lr_scheduler"), "loss_spike"
                )
            return
        if can_roll_back:
            self._roll_back(step, loss, grad_norm, model, optimizer, kwargs.get("lr_scheduler"), "non_finite")
            return
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

    def _roll_back(self, step, loss, grad_norm, model, optimizer, scheduler, cause) -> None:
        for param in model.parameters():
            param.grad = None
        self._snapshot.restore(model, optimizer)
        inner = getattr(optimizer, "optimizer", optimizer)
        for group in inner.param_groups:
            group["lr"] *= self.lr_factor
            if "initial_lr" in group:
                group["initial_lr"] *= self.lr_factor
        if scheduler is not None and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [lr * self.lr_factor for lr in scheduler.base_lrs]
        record = {
            "step": step,
            "cause": cause,
            "loss": loss,
            "grad_norm": grad_norm,
            "restored_step": self._snapshot.step,
            "lr_factor": self.lr_factor ** (len(self.rollbacks) + 1),
        }
        self.rollbacks.append(record)
        logger.warning(
            "%s at step %d: rolled back to the weights and optimizer state of step %d, learning rates × %g "
            "(roll-back %d of %d).",
            "A loss spike" if cause == "loss_spike" else "Non-finite loss or gradient",
            step,
            self._snapshot.step,
            self.lr_factor,
            len(self.rollbacks),
            self.max_rollbacks,
        )
        self._pending["non_finite/rollback_step"] = float(step)

    def report(self) -> dict[str, Any]:
        return {"non_finite": self.event, "rollbacks": list(self.rollbacks)}


class _Snapshot:
    """The weights (frozen ones too: an unfreezing schedule may thaw them before a roll-back) and the optimizer's
    per-parameter state at one step, on the host."""

    def __init__(self, step: int, weights: list[torch.Tensor], states: list[dict[str, Any] | None]) -> None:
        self.step, self.weights, self.states = step, weights, states

    @classmethod
    @torch.no_grad()
    def take(cls, model, optimizer, step: int) -> _Snapshot:
        params = list(model.parameters())
        inner = getattr(optimizer, "optimizer", optimizer)
        states = []
        for param in params:
            state = inner.state.get(param) if inner is not None else None
            states.append(
                None
                if not state
                else {key: _host_copy(value) for key, value in state.items() if key != "anchor"}
            )
        return cls(step, [param.detach().to("cpu", copy=True) for param in params], states)

    @torch.no_grad()
    def restore(self, model, optimizer) -> None:
        params = list(model.parameters())
        inner = getattr(optimizer, "optimizer", optimizer)
        for param, weight, saved in zip(params, self.weights, self.states, strict=True):
            param.copy_(weight)
            state = inner.state.get(param)
            if state is None:
                continue
            for key in [key for key in state if key != "anchor" and (saved is None or key not in saved)]:
                del state[key]  # created after the snapshot: the optimizer starts it again
            for key, value in (saved or {}).items():
                if torch.is_tensor(value) and torch.is_tensor(state.get(key)):
                    state[key].copy_(value)
                else:
                    state[key] = value


def _host_copy(value: Any) -> Any:
    return value.detach().to("cpu", copy=True) if torch.is_tensor(value) else value
