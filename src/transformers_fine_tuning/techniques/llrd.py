"""Layer-wise learning-rate decay (Zhang et al. 2021, Sec. 5.3; timm's ``layer_decay``) as a Trainer callback. Its
functional form is the optimizer's parameter groups: :func:`transformers_fine_tuning.param_groups` with
``layer_decay`` (and ``layer_decay_floor``); its threshold freezes with :func:`.freeze.freeze_bottom_layers`."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..architectures import ModelLayout
from ..optim.param_groups import RATE_SHARE, frozen_depths, is_rate_share
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup
from .freeze import freeze_bottom_layers, refuse_frozen_reinit

__all__ = ["LLRDCallback"]


class LLRDCallback(FineTuningCallback):
    """Layer-wise learning-rate decay ξ: head η, top layer η·ξ, …, embeddings η·ξ^(L+1) (Zhang et al. 2021).

    See :func:`transformers_fine_tuning.param_groups` (``layer_decay``). ``floor``: the lowest scale a depth gets
    (timm's ``min_scale``), so the bottom of a deep model still learns. ``freeze_below``: the depths whose
    scale (after the floor) is below it are frozen — out of the optimizer, bitwise unchanged — instead of
    trained at a rate of ~0 that still costs optimizer memory and time (timm's ``no_opt_scale``); they are a
    bottom run, the embeddings first (:func:`~transformers_fine_tuning.optim.param_groups.frozen_depths`).
    Frozen depths that a :class:`~.reinit.ReinitCallback` re-initialises are refused.
    """

    technique = "llrd"  # its freezing runs with FreezeCallback's, after re-initialisation

    def __init__(
        self, decay: float, *, floor: float | None = None, freeze_below: float | None = None
    ) -> None:
        for name, value in (("decay", decay), ("floor", floor), ("freeze_below", freeze_below)):
            if (name == "decay" and value is None) or not is_rate_share(value):
                raise ValueError(f"LLRDCallback: {name} must be {RATE_SHARE}, got {value}.")
        self.decay = decay
        self.floor = floor
        self.freeze_below = freeze_below
        self.frozen_depths = 0

    def _arguments(self) -> str:
        extra = "".join(
            f", {name}={value}"
            for name, value in (("floor", self.floor), ("freeze_below", self.freeze_below))
            if value is not None
        )
        return f"{self.decay}{extra}"

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        self.frozen_depths = frozen_depths(layout.num_layers, self.decay, self.floor, self.freeze_below)
        layers = max(self.frozen_depths - 1, 0)  # depth 0 is the embeddings, depth d is layer d − 1
        refuse_frozen_reinit(
            plan,
            layout,
            self.describe(),
            layers,
            f"the threshold freezes the embeddings and the bottom {layers} layers, so ",
            "Lower the threshold or re-initialise fewer layers.",
        )

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        if self.frozen_depths:
            freeze_bottom_layers(model, self.frozen_depths - 1, embeddings=True, layer_map=plan.layer_map)

    def param_group_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"layer_decay": self.decay}
        if self.floor is not None:
            options["layer_decay_floor"] = self.floor
        return options
