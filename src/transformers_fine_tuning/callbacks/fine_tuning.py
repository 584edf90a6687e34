"""The stabilising techniques as Trainer callbacks: thin wrappers over :mod:`~transformers_fine_tuning.surgery`
and :func:`~transformers_fine_tuning.param_groups`, each checking itself against the model and the plan."""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import surgery
from ..architectures import ModelLayout
from ..optim.param_groups import RATE_SHARE, frozen_depths, is_rate_share
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup

__all__ = ["FreezeCallback", "L2SPCallback", "LLRDCallback", "MixoutCallback", "ReinitCallback"]


def _check_layers(name: str, num_layers: int, layout: ModelLayout) -> None:
    if not 0 <= num_layers <= layout.num_layers:
        unit = "layer groups" if layout.layer_map.shared_layers else "layers"
        raise ValueError(
            f"{name}: the model has {layout.num_layers} {unit} (0 … {layout.num_layers} allowed)."
        )


def _refuse_frozen_reinit(
    plan: FineTuningPlan, layout: ModelLayout, name: str, bottom_layers: int, how: str, fix: str
) -> None:
    """Refuse freezing the bottom ``bottom_layers`` layers where a :class:`ReinitCallback` re-initialises one: it
    would stay frozen at its random values. ``how`` says how ``name`` comes to freeze them."""
    if set(range(bottom_layers)) & plan.reinit_layers:
        reinit = next(cb for cb in plan.checked if isinstance(cb, ReinitCallback))
        raise ValueError(
            f"{reinit.describe()} and {name} overlap on a {layout.num_layers}-layer model: {how}a re-initialised "
            f"layer would stay frozen at its random values. {fix}"
        )


class ReinitCallback(FineTuningCallback):
    """Re-initialise the top ``num_layers`` layers and the pooler (Zhang et al. 2021, Sec. 5.2).

    See :func:`transformers_fine_tuning.reinit_top_layers`. The re-initialised parameters are treated as
    novel by the optimizer groups (weight decay toward zero, no L2-SP).
    """

    technique = "reinit"

    def __init__(self, num_layers: int, reinit_pooler: bool = True) -> None:
        if num_layers < 0:
            raise ValueError(f"ReinitCallback: num_layers must be >= 0, got {num_layers}.")
        self.num_layers = num_layers
        self.reinit_pooler = reinit_pooler

    def _arguments(self) -> str:
        return f"{self.num_layers}" + ("" if self.reinit_pooler else ", reinit_pooler=False")

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        _check_layers(self.describe(), self.num_layers, layout)
        plan.reinit_layers.update(range(layout.num_layers - self.num_layers, layout.num_layers))

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        plan.novel.update(
            surgery.reinit_top_layers(
                model, self.num_layers, reinit_pooler=self.reinit_pooler, layer_map=plan.layer_map
            )
        )


class FreezeCallback(FineTuningCallback):
    """Freeze the embeddings (``embeddings=True``) and the bottom ``num_layers`` layers.

    See :func:`transformers_fine_tuning.freeze_bottom_layers`: frozen parameters are left out of the
    optimizer, so neither momentum nor weight decay moves them. Refuses layers that a
    :class:`ReinitCallback` re-initialises: they would stay frozen at their random values.
    """

    technique = "freeze"

    def __init__(self, num_layers: int, embeddings: bool = True) -> None:
        if num_layers < 0:
            raise ValueError(f"FreezeCallback: num_layers must be >= 0, got {num_layers}.")
        self.num_layers = num_layers
        self.embeddings = embeddings

    def _arguments(self) -> str:
        return f"{self.num_layers}, embeddings={self.embeddings}"

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        _check_layers(self.describe(), self.num_layers, layout)
        _refuse_frozen_reinit(
            plan, layout, self.describe(), self.num_layers, "", "Re-initialise or freeze fewer layers."
        )

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        surgery.freeze_bottom_layers(
            model, self.num_layers, embeddings=self.embeddings, layer_map=plan.layer_map
        )


class MixoutCallback(FineTuningCallback):
    """Mixout (Lee et al. 2020): backbone Linear layers mix toward their pretrained weights with probability p.

    See :func:`transformers_fine_tuning.apply_mixout`. Layers re-initialised by a :class:`ReinitCallback`
    have no pretrained weights and are left as they are.
    """

    technique = "mixout"

    def __init__(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"MixoutCallback: p must be in [0, 1), got {p}.")
        self.p = p

    def _arguments(self) -> str:
        return f"{self.p}"

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        surgery.apply_mixout(model, self.p, exclude=plan.novel, layer_map=plan.layer_map)


class LLRDCallback(FineTuningCallback):
    """Layer-wise learning-rate decay ξ: head η, top layer η·ξ, …, embeddings η·ξ^(L+1) (Zhang et al. 2021).

    See :func:`transformers_fine_tuning.param_groups` (``layer_decay``). ``floor``: the lowest scale a depth gets
    (timm's ``min_scale``), so the bottom of a deep model still learns. ``freeze_below``: the depths whose
    scale (after the floor) is below it are frozen — out of the optimizer, bitwise unchanged — instead of
    trained at a rate of ~0 that still costs optimizer memory and time (timm's ``no_opt_scale``); they are a
    bottom run, the embeddings first (:func:`~transformers_fine_tuning.optim.param_groups.frozen_depths`).
    Frozen depths that a :class:`ReinitCallback` re-initialises are refused.
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
        _refuse_frozen_reinit(
            plan,
            layout,
            self.describe(),
            layers,
            f"the threshold freezes the embeddings and the bottom {layers} layers, so ",
            "Lower the threshold or re-initialise fewer layers.",
        )

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        if self.frozen_depths:
            surgery.freeze_bottom_layers(
                model, self.frozen_depths - 1, embeddings=True, layer_map=plan.layer_map
            )

    def param_group_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"layer_decay": self.decay}
        if self.floor is not None:
            options["layer_decay_floor"] = self.floor
        return options


class L2SPCallback(FineTuningCallback):
    """L2-SP (Li et al. 2018, Eq. 3): pull pretrained parameters toward their pretrained values, decay the head.

    ``strength`` is λ_sp for every pretrained parameter (they get no decay toward zero); ``head_weight_decay``
    is the weight decay λ_wd toward zero of the novel parameters (the head, re-initialised layers; biases and
    LayerNorm excluded). Both replace ``TrainingArguments.weight_decay``. Needs an optimizer that keeps
    anchors: :class:`~transformers_fine_tuning.AdamWL2SP`, which ``TrainerOptimizerInit`` picks when no other
    optimizer was asked for.

    Refused for a model with adapters (PEFT): the pretrained weights are frozen there, and what trains — the
    adapters — has no pretrained value; their starting point is a random draw (LoRA's A) and zeros (B), and
    pulling toward it regularises nothing (on B it is plain weight decay: use ``weight_decay``).
    """

    technique = "l2sp"
    requires_anchors = True

    def __init__(self, strength: float, head_weight_decay: float = 0.0) -> None:
        if strength < 0.0 or head_weight_decay < 0.0:
            raise ValueError(
                f"L2SPCallback: strength and head_weight_decay must be >= 0, got {strength}, {head_weight_decay}."
            )
        self.strength = strength
        self.head_weight_decay = head_weight_decay

    def _arguments(self) -> str:
        return f"{self.strength}" + (
            f", head_weight_decay={self.head_weight_decay}" if self.head_weight_decay else ""
        )

    def param_group_options(self) -> dict[str, Any]:
        return {"l2sp": self.strength, "weight_decay": 0.0, "novel_weight_decay": self.head_weight_decay}
