"""Gradual unfreezing (Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification", ACL,
Sec. 3.3; Lightning's ``BackboneFinetuning`` in the same spirit) as a Trainer callback: unfreeze from the top, one
depth per stage. The schedule's mechanics are :class:`~.unfreezing.UnfreezingCallback`'s."""

from __future__ import annotations

from ..architectures import ModelLayout
from .base import steps_of
from .unfreezing import UnfreezingCallback

__all__ = ["GradualUnfreezingCallback"]


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
