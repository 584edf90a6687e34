"""Training the top first: LP-FT and gradual unfreezing, as Trainer callbacks.

* :class:`LPFTCallback` — Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
  Out-of-Distribution" (ICLR 2022): a linear probe first (the new head alone, the backbone frozen), then full
  fine-tuning from there. A random head's large early gradients are what distorts the pretrained features.
* :class:`GradualUnfreezingCallback` — Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text
  Classification" (ACL), Sec. 3.3: unfreeze from the top, one depth per stage (Lightning's
  ``BackboneFinetuning`` in the same spirit).

Both hold every trainable parameter in the optimizer from the start, in groups split by depth, and keep the
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

__all__ = ["GradualUnfreezingCallback", "LPFTCallback", "UnfreezingCallback"]


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


class LPFTCallback(UnfreezingCallback):
    """LP-FT (Kumar et al. 2022): the new head alone for ``head_steps`` optimizer steps — the linear probe —, then
    every parameter. ``head_lr``: the head's own learning rate during the probe (scaled by the Trainer's schedule);
    default the run's. ``warmup``: the backbone's own warm-up after the probe.

    The head is what lies outside the backbone (the classifier of any head class, a head of your own); the
    backbone, its pooler included, is frozen during the probe. With L2-SP the backbone is anchored to its
    pretrained weights from the start; with LLRD each depth keeps its rate; under LoRA the probe trains the head
    (PEFT's ``modules_to_save``) and the adapters join after it.
    """

    technique = "lp_ft"

    def __init__(self, head_steps: float, *, head_lr: float | None = None, warmup: float = 0.0) -> None:
        if not head_steps > 0.0:
            raise ValueError(f"LPFTCallback: head_steps must be > 0, got {head_steps}.")
        if head_lr is not None and not head_lr > 0.0:
            raise ValueError(f"LPFTCallback: head_lr must be > 0, got {head_lr}.")
        super().__init__(warmup=warmup)
        self.head_steps = head_steps
        self.head_lr = head_lr
        self._head_until = 0

    def _arguments(self) -> str:
        extra = f", head_lr={self.head_lr}" if self.head_lr is not None else ""
        return f"{self.head_steps}{extra}" + (f", warmup={self.warmup}" if self.warmup else "")

    def on_train_begin(self, args, state, control, **kwargs):
        self._head_until = steps_of(self.head_steps, state.max_steps)
        if not 0 < self._head_until < state.max_steps:
            raise ValueError(
                f"{self.describe()}: a probe of {self._head_until} of the run's {state.max_steps} steps leaves "
                "nothing to probe or nothing to fine-tune. Give fewer head steps, or train longer."
            )
        super().on_train_begin(args, state, control, **kwargs)
        if not any(thaw == 0 for thaw in self._thaw):
            raise ValueError(f"{self.describe()}: the model has no head outside its backbone to probe with.")

    def thaw_step(self, layout: ModelLayout, names: list[str], max_steps: int) -> int:
        return 0 if names and all(layout.is_head(name) for name in names) else self._head_until

    def head_lr_during(self, step: int) -> float | None:
        return self.head_lr if step < self._head_until else None


class GradualUnfreezingCallback(UnfreezingCallback):
    """Gradual unfreezing (Howard & Ruder 2018, Sec. 3.3): the head and the pooler (depth L + 1) first, then one
    more depth from the top every ``stage_steps`` optimizer steps (``depths_per_stage`` at a time), the
    embeddings last. ``warmup``: each thawed depth's own warm-up. For ALBERT the depths are layer groups.
    """

    technique = "gradual_unfreeze"

    def __init__(self, stage_steps: float, *, depths_per_stage: int = 1, warmup: float = 0.0) -> None:
        if not stage_steps > 0.0 or depths_per_stage < 1:
            raise ValueError(
                f"GradualUnfreezingCallback: stage_steps must be > 0 and depths_per_stage >= 1, got {stage_steps}, "
                f"{depths_per_stage}."
            )
        super().__init__(warmup=warmup)
        self.stage_steps = stage_steps
        self.depths_per_stage = depths_per_stage

    def _arguments(self) -> str:
        extra = f", depths_per_stage={self.depths_per_stage}" if self.depths_per_stage != 1 else ""
        return f"{self.stage_steps}{extra}" + (f", warmup={self.warmup}" if self.warmup else "")

    def thaw_step(self, layout: ModelLayout, names: list[str], max_steps: int) -> int:
        if not names:
            return 0
        from_top = layout.num_layers + 1 - layout.depth(names[0])  # 0 for the head, L + 1 for the embeddings
        return (from_top // self.depths_per_stage) * steps_of(self.stage_steps, max_steps)
