"""LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
ICLR 2022) as a Trainer callback: a linear probe first (the new head alone, the backbone frozen), then full
fine-tuning from there. A random head's large early gradients are what distorts the pretrained features. The
schedule's mechanics are :class:`~.unfreezing.UnfreezingCallback`'s."""

from __future__ import annotations

from ..architectures import ModelLayout
from .base import steps_of
from .unfreezing import UnfreezingCallback

__all__ = ["LPFTCallback"]


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
