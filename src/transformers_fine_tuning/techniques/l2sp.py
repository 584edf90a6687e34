"""L2-SP (Li et al. 2018, "Explicit Inductive Bias for Transfer Learning with Convolutional Networks", Eq. 3) as a
Trainer callback. Its functional form is the optimizer: :class:`~transformers_fine_tuning.AdamWL2SP` with the
parameter groups of :func:`transformers_fine_tuning.param_groups` (``l2sp``, ``novel_weight_decay``)."""

from __future__ import annotations

from typing import Any

from .base import FineTuningCallback

__all__ = ["L2SPCallback"]


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
