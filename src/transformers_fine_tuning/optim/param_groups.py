"""From a model to optimizer parameter groups: decay / no decay, pretrained / novel, layer depth.

A pure function in the manner of timm's ``param_groups_layer_decay``: the architecture knowledge comes from
:mod:`transformers_fine_tuning.architectures`, so this module knows no model. Unlike timm, each group carries
its final ``lr`` (Hugging Face schedulers scale every group's initial ``lr``; they ignore ``lr_scale``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..architectures import LayerMap, ModelLayout, model_layout

__all__ = [
    "RATE_SHARE",
    "frozen_depths",
    "is_rate_share",
    "layer_scale",
    "names_under",
    "no_decay_parameter_names",
    "param_groups",
]

RATE_SHARE = "in (0, 1]"
"""The range of a learning-rate multiplier: LLRD's factor ξ, its floor, the share below which layers freeze."""


def is_rate_share(value: float | None) -> bool:
    """Whether ``value`` is a learning-rate multiplier in :data:`RATE_SHARE`, or ``None`` (off). The one
    definition of that range, read here and by the job's argument checks."""
    return value is None or 0.0 < value <= 1.0


# The rule of ``transformers.Trainer.get_decay_parameter_names``: biases and normalisation weights are not
# decayed (decaying a LayerNorm gain toward zero is not a regulariser, it is damage).
_NO_DECAY_PATTERNS = (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)


def no_decay_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters exempt from weight decay: biases and normalisation layers' parameters."""
    exempt = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES) or "LayerNorm" in type(module).__name__
        for param_name, _ in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            if is_norm or any(re.search(pattern, name.lower()) for pattern in _NO_DECAY_PATTERNS):
                exempt.add(name)
    return exempt


def layer_scale(depth: int, num_layers: int, decay: float, floor: float | None = None) -> float:
    """The learning-rate scale of depth ``depth`` under LLRD: ξ^(L+1−d), at least ``floor`` (timm's ``min_scale``).

    The floor keeps the bottom of a deep model learning (ξ = 0.8 over 24 layers leaves the embeddings
    0.8^25 ≈ 0.004 of η without one)."""
    scale = decay ** (num_layers + 1 - depth)
    return scale if floor is None else max(scale, floor)


def frozen_depths(num_layers: int, decay: float, floor: float | None, freeze_below: float | None) -> int:
    """How many depth units from the bottom (0 = embeddings, 1 = the first layer, …) LLRD's freeze threshold
    freezes: those whose scale :func:`layer_scale` is below ``freeze_below`` (timm's ``no_opt_scale``) — a
    learning rate of ~0 that would still cost optimizer memory and time. Scales grow with depth, so they are
    a bottom run; the head (depth L + 1, scale 1) is never frozen."""
    if freeze_below is None:
        return 0
    return sum(
        1 for depth in range(num_layers + 1) if layer_scale(depth, num_layers, decay, floor) < freeze_below
    )


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    novel_weight_decay: float | None = None,
    l2sp: float = 0.0,
    layer_decay: float | None = None,
    layer_decay_floor: float | None = None,
    by_depth: bool = False,
    novel: Iterable[str] = (),
    layer_map: LayerMap | None = None,
) -> list[dict[str, Any]]:
    """Optimizer groups for fine-tuning ``model``, each with its own ``lr``, ``weight_decay`` and ``l2sp``.

    The split, per trainable parameter (frozen ones — ``requires_grad=False`` — are left out):

    * **decay / no decay**: biases and LayerNorm parameters get no weight decay;
    * **pretrained / novel**: what has no pretrained value — what ``from_pretrained`` did not find in the
      checkpoint (the new head of any head class; a model built without a checkpoint load: everything outside
      the backbone, see :mod:`~transformers_fine_tuning.architectures`), adapter parameters (LoRA's
      ``lora_A``/``lora_B`` under a PEFT model) and the parameters named in ``novel`` (names or module prefixes,
      e.g. re-initialised layers) — is *novel*: it gets ``novel_weight_decay`` toward zero and no L2-SP, since
      pulling a random initialisation toward itself regularises nothing. Pretrained parameters get
      ``weight_decay`` (decay parameters only) and ``l2sp`` (all of them: pulling a bias or a LayerNorm gain
      toward its pretrained value is harmless, unlike pulling it toward zero). This is the L2-SP penalty of
      Li et al. 2018, Eq. 3: α/2·‖w_S − w⁰_S‖² + β/2·‖w_S̄‖².
    * **depth** (only with ``layer_decay`` ξ): the group at depth d (0 = embeddings … L + 1 = pooler and
      head) gets ``lr`` · ξ^(L+1−d) — layer-wise learning-rate decay as in Zhang et al. 2021, Sec. 5.3 —, or
      ``lr`` · ``layer_decay_floor`` where that is larger (:func:`layer_scale`). An adapter has the depth of
      the layer it adapts. (Freezing the depths whose scale is below a threshold is surgery, not grouping:
      :class:`~transformers_fine_tuning.LLRDCallback`'s ``freeze_below``.)

    Groups are named ``[<depth>_]<pretrained|novel>_<decay|no_decay>`` (e.g. ``layer_3_pretrained_decay``),
    carry ``param_names``, and come in depth order; empty groups are dropped.

    The layout (the architecture table, else the map discovered from the model) is needed only to tell the
    head from the backbone and to find depths; with none of ``l2sp``, ``layer_decay`` or
    ``novel_weight_decay`` given, a model whose layout cannot be found is accepted and all of its parameters
    count as pretrained.

    Args:
        model: the model to fine-tune (with its head; a PEFT model is seen through).
        lr: base learning rate η (the head's, under LLRD).
        weight_decay: λ_wd for pretrained decay parameters.
        novel_weight_decay: λ_wd for novel decay parameters (default: ``weight_decay``).
        l2sp: λ_sp for pretrained parameters; only :class:`AdamWL2SP` honours it.
        layer_decay: ξ for LLRD, in (0, 1]; ``None`` for one learning rate.
        layer_decay_floor: the lowest scale LLRD gives, in (0, 1] (with ``layer_decay`` only).
        by_depth: split the groups by depth without scaling their rates (what a schedule that treats each depth
            on its own needs: gradual unfreezing); implied by ``layer_decay``.
        novel: names (or module prefixes) of further parameters to treat as novel (re-initialised ones, a head
            of your own loaded by hand).
        layer_map: layout for an architecture outside the table (overrides discovery).
    """
    novel_weight_decay = weight_decay if novel_weight_decay is None else novel_weight_decay
    grouping = _Grouping(lr, weight_decay, novel_weight_decay, l2sp, layer_decay, layer_decay_floor, by_depth)
    layout = _layout(model, layer_map, needed=grouping.needs_layout)
    return grouping.groups(model, layout, novel)


@dataclass(frozen=True)
class _Grouping:
    """The settings of :func:`param_groups` (``novel_weight_decay`` resolved), checked when made: which group
    a parameter joins, and the group's ``lr``, ``weight_decay`` and ``l2sp``."""

    lr: float
    weight_decay: float
    novel_weight_decay: float
    l2sp: float
    layer_decay: float | None
    layer_decay_floor: float | None
    by_depth: bool

    def __post_init__(self) -> None:
        layer_decay, layer_decay_floor = self.layer_decay, self.layer_decay_floor
        if not is_rate_share(layer_decay):
            raise ValueError(f"layer_decay must be {RATE_SHARE}, got {layer_decay}.")
        if layer_decay_floor is not None and (layer_decay is None or not is_rate_share(layer_decay_floor)):
            raise ValueError(
                f"layer_decay_floor must be {RATE_SHARE} and comes with layer_decay, got {layer_decay_floor} "
                f"(layer_decay={layer_decay})."
            )

    @property
    def needs_layout(self) -> bool:
        """Whether the groups need the model's layout: to tell the head from the backbone, or for depths."""
        return (
            self.l2sp > 0.0
            or self.layer_decay is not None
            or self.by_depth
            or self.novel_weight_decay != self.weight_decay
        )

    def groups(
        self, model: nn.Module, layout: ModelLayout | None, novel: Iterable[str]
    ) -> list[dict[str, Any]]:
        """The trainable parameters of ``model`` in their groups, in depth order (:func:`param_groups`)."""
        novel_names = set().union(
            *names_under((name for name, _ in model.named_parameters()), novel).values()
        )
        exempt = no_decay_parameter_names(model)
        split_by_depth = layout is not None and (self.layer_decay is not None or self.by_depth)
        groups: dict[tuple[int, bool, bool], dict[str, Any]] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            is_novel = name in novel_names or (layout is not None and layout.is_novel(name))
            decays = name not in exempt
            depth = layout.depth(name) if split_by_depth else -1
            key = (depth, is_novel, decays)
            if key not in groups:
                groups[key] = self._empty_group(layout, depth, is_novel, decays)
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        return [groups[key] for key in sorted(groups)]

    def _empty_group(
        self, layout: ModelLayout | None, depth: int, is_novel: bool, decays: bool
    ) -> dict[str, Any]:
        """A new group with its name and hyperparameters: the ``lr`` of its depth under LLRD (depth -1: no
        depth), the novel weight decay and no L2-SP for a novel group, no weight decay for a no-decay one."""
        group_lr = (
            self.lr
            if depth < 0 or self.layer_decay is None
            else self.lr * layer_scale(depth, layout.num_layers, self.layer_decay, self.layer_decay_floor)
        )
        return {
            "name": _group_name(layout, depth, is_novel, decays),
            "params": [],
            "param_names": [],
            "lr": group_lr,
            "weight_decay": (self.novel_weight_decay if is_novel else self.weight_decay) if decays else 0.0,
            "l2sp": 0.0 if is_novel else self.l2sp,
        }


def names_under(names: Iterable[str], entries: Iterable[str]) -> dict[str, list[str]]:
    """For each of ``entries``, the ``names`` equal to it or inside the module it names (``"classifier"`` covers
    ``classifier.weight``): how ``novel=`` is read wherever it is given."""
    names = list(names)
    return {
        entry: [name for name in names if name == entry or name.startswith(f"{entry}.")] for entry in entries
    }


def _layout(model: nn.Module, layer_map: LayerMap | None, *, needed: bool) -> ModelLayout | None:
    """The layout of ``model`` (from ``layer_map`` if given); where the groups do not need it and no map is
    given, ``None`` when it cannot be found (all parameters then count as pretrained)."""
    if needed or layer_map is not None:
        return model_layout(model, layer_map)
    try:
        return model_layout(model)
    except ValueError:
        return None


def _group_name(layout: ModelLayout | None, depth: int, is_novel: bool, decays: bool) -> str:
    parts = []
    if depth >= 0:
        parts.append(layout.depth_name(depth))
    if layout is not None:
        parts.append("novel" if is_novel else "pretrained")
    parts.append("decay" if decays else "no_decay")
    return "_".join(parts)
