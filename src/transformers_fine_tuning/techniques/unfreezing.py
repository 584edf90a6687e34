"""Training the top first: what LP-FT (:mod:`.lp_ft`) and gradual unfreezing (:mod:`.gradual_unfreezing`) share.

The schedules hold every trainable parameter in the optimizer from the start, in groups split by depth, and keep the
groups not yet thawed at ``requires_grad=False``: they get no gradient, so the optimizer skips them — no step, no
weight decay, no L2-SP pull, no optimizer state — and their state is created at their first step after the
thaw. A group that thaws ramps its learning rate linearly from 0 to the scheduled value over ``warmup`` steps
(its own warm-up: the Trainer's warm-up was spent while it was frozen). Steps given below 1 are shares of the
run's optimizer steps, as ``--warmup_steps``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..architectures import ModelLayout, model_layout
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup, steps_of

__all__ = ["UnfreezingCallback"]


class UnfreezingCallback(FineTuningCallback):
    """Base of the schedules that thaw the optimizer's groups one after another (see the module docstring).

    A subclass says when each group thaws (:meth:`thaw_step`); this class freezes, thaws and ramps.
    """

    def __init__(self, *, warmup: float = 0.0) -> None:
        if not warmup >= 0.0:
            raise ValueError(f"{type(self).__name__}: warmup must be >= 0, got {warmup}.")
        self.warmup = warmup
        self._layout: ModelLayout | None = None
        self._thaw: list[int] = []
        self._warmup_steps = 0
        self._scheduled: list[float] | None = None

    def thaw_step(self, layout: ModelLayout, names: list[str], max_steps: int) -> int:
        """The optimizer step at which the group of parameters ``names`` starts to train."""
        raise NotImplementedError

    def head_lr_during(self, step: int) -> float | None:
        """An own learning rate for the head groups at ``step`` (LP-FT's probe), or ``None``."""
        return None

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        args = getattr(plan.trainer, "args", None)
        if args is not None and args.world_size > 1:
            raise ValueError(
                f"{self.describe()} changes which parameters take gradients during the run, which distributed "
                "data parallelism fixes when it wraps the model. Run it on one process, or drop it."
            )

    def param_group_options(self) -> dict[str, Any]:
        return {"by_depth": True}

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        self._layout = model_layout(model, plan.layer_map)

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, optimizer=optimizer, **kwargs)
        optimizer = getattr(optimizer, "optimizer", optimizer)
        layout = self._layout or model_layout(model)
        self._thaw = [
            self.thaw_step(layout, group.get("param_names", []), state.max_steps)
            for group in optimizer.param_groups
        ]
        self._warmup_steps = steps_of(self.warmup, state.max_steps)
        self._set_trainable(optimizer, state.global_step)  # a resumed run picks up where its stages were

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self._set_trainable(getattr(optimizer, "optimizer", optimizer), state.global_step)

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        optimizer = getattr(optimizer, "optimizer", optimizer)
        self._scheduled = [group["lr"] for group in optimizer.param_groups]
        head_lr = self.head_lr_during(state.global_step)
        for group, thaw in zip(optimizer.param_groups, self._thaw, strict=True):
            if head_lr is not None and thaw == 0:  # the probe's own rate, under the Trainer's schedule
                initial = group.get("initial_lr") or group["lr"]
                group["lr"] = head_lr * (group["lr"] / initial if initial else 0.0)
            since = state.global_step - thaw
            if thaw > 0 and 0 <= since < self._warmup_steps:
                group["lr"] *= (since + 1) / (self._warmup_steps + 1)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        """Give the groups back their scheduled rates (the scheduler and the logs see those)."""
        optimizer = getattr(optimizer, "optimizer", optimizer)
        if self._scheduled is not None:
            for group, lr in zip(optimizer.param_groups, self._scheduled, strict=True):
                group["lr"] = lr
            self._scheduled = None

    def on_train_end(self, args, state, control, optimizer=None, **kwargs):
        """Every group trainable again: a run that ends before its last stage leaves no parameter frozen behind
        (the model as it was built, for evaluation, saving and another ``train()``)."""
        inner = getattr(optimizer, "optimizer", optimizer)
        if inner is not None and self._thaw:
            self._set_trainable(inner, max(self._thaw))

    def _set_trainable(self, optimizer, step: int) -> None:
        for group, thaw in zip(optimizer.param_groups, self._thaw, strict=True):
            for param in group["params"]:
                param.requires_grad_(step >= thaw)
