"""The stabilising techniques as Trainer callbacks: thin wrappers over :mod:`~transformers_fine_tuning.surgery`
and :func:`~transformers_fine_tuning.param_groups`."""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import surgery
from ..architectures import unwrap_adapters
from .base import FineTuningCallback, FineTuningPlan

__all__ = ["FreezeCallback", "L2SPCallback", "LLRDCallback", "MixoutCallback", "ReinitCallback"]


class ReinitCallback(FineTuningCallback):
    """Re-initialise the top ``num_layers`` layers and the pooler (Zhang et al. 2021, Sec. 5.2).

    See :func:`transformers_fine_tuning.reinit_top_layers`. The re-initialised parameters are treated as
    novel by the optimizer groups (weight decay toward zero, no L2-SP).
    """

    surgery_stage = 0

    def __init__(self, num_layers: int, reinit_pooler: bool = True) -> None:
        if num_layers < 0:
            raise ValueError(f"ReinitCallback: num_layers must be >= 0, got {num_layers}.")
        self.num_layers = num_layers
        self.reinit_pooler = reinit_pooler

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        plan.novel.update(
            surgery.reinit_top_layers(
                model, self.num_layers, reinit_pooler=self.reinit_pooler, layer_map=plan.layer_map
            )
        )


class FreezeCallback(FineTuningCallback):
    """Freeze the embeddings (``embeddings=True``) and the bottom ``num_layers`` layers.

    See :func:`transformers_fine_tuning.freeze_bottom_layers`: frozen parameters are left out of the
    optimizer, so neither momentum nor weight decay moves them.
    """

    surgery_stage = 1

    def __init__(self, num_layers: int, embeddings: bool = True) -> None:
        if num_layers < 0:
            raise ValueError(f"FreezeCallback: num_layers must be >= 0, got {num_layers}.")
        self.num_layers = num_layers
        self.embeddings = embeddings

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        surgery.freeze_bottom_layers(
            model, self.num_layers, embeddings=self.embeddings, layer_map=plan.layer_map
        )


class MixoutCallback(FineTuningCallback):
    """Mixout (Lee et al. 2020): backbone Linear layers mix toward their pretrained weights with probability p.

    See :func:`transformers_fine_tuning.apply_mixout`. Layers re-initialised by a :class:`ReinitCallback`
    have no pretrained weights and are left as they are.
    """

    surgery_stage = 2

    def __init__(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"MixoutCallback: p must be in [0, 1), got {p}.")
        self.p = p

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        surgery.apply_mixout(model, self.p, exclude=plan.novel, layer_map=plan.layer_map)


class LLRDCallback(FineTuningCallback):
    """Layer-wise learning-rate decay ξ: head η, top layer η·ξ, …, embeddings η·ξ^(L+1) (Zhang et al. 2021).

    See :func:`transformers_fine_tuning.param_groups` (``layer_decay``).
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"LLRDCallback: decay must be in (0, 1], got {decay}.")
        self.decay = decay

    def param_group_options(self) -> dict[str, Any]:
        return {"layer_decay": self.decay}


class L2SPCallback(FineTuningCallback):
    """L2-SP (Li et al. 2018): pull pretrained parameters toward their pretrained values, decay novel ones.

    ``pretrained`` is λ_sp for every pretrained parameter (they get no decay toward zero); ``novel`` is the
    weight decay λ_wd toward zero of the novel parameters (the head, re-initialised layers; biases and
    LayerNorm excluded). Both replace ``TrainingArguments.weight_decay``. Needs an optimizer that keeps
    anchors: :class:`~transformers_fine_tuning.AdamWL2SP`, which ``TrainerOptimizerInit`` picks when no other
    optimizer was asked for.

    Refused for a model with adapters (PEFT): the pretrained weights are frozen there, and what trains — the
    adapters — has no pretrained value; their starting point is a random draw (LoRA's A) and zeros (B), and
    pulling toward it regularises nothing (on B it is plain weight decay: use ``weight_decay``).
    """

    requires_anchors = True

    def __init__(self, pretrained: float, novel: float = 0.0) -> None:
        if pretrained < 0.0 or novel < 0.0:
            raise ValueError(
                f"L2SPCallback: strengths must be >= 0, got pretrained={pretrained}, novel={novel}."
            )
        self.pretrained = pretrained
        self.novel = novel

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        if unwrap_adapters(model)[2] is not None:
            raise ValueError(
                "L2SPCallback cannot act on a model with adapters (PEFT): its pretrained weights are frozen, and "
                "the adapters it would pull toward their starting point have no pretrained value — LoRA starts "
                "from a random A and B = 0, so the pull regularises nothing on A and is weight decay on B. Drop "
                "L2-SP (use weight_decay for the adapters), or fine-tune without adapters."
            )

    def param_group_options(self) -> dict[str, Any]:
        return {"l2sp": self.pretrained, "weight_decay": 0.0, "novel_weight_decay": self.novel}
