"""The contract between fine-tuning callbacks and :class:`~transformers_fine_tuning.TrainerOptimizerInit`.

A fine-tuning callback is an ordinary ``TrainerCallback`` (it goes in ``callbacks=[...]``) with two extra
hooks that the Trainer subclass calls at the moments the technique needs — moments for which the Trainer
has no event (as Composer has an explicit event for surgery before the optimizer exists):

1. :meth:`FineTuningCallback.prepare_model` — model surgery, after the model is built (and again for each
   model that ``model_init`` builds), before the optimizer and its anchors exist;
2. :meth:`FineTuningCallback.param_group_options` — keyword arguments for
   :func:`~transformers_fine_tuning.param_groups` while the optimizer is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn
from transformers import TrainerCallback

from ..architectures import LayerMap

__all__ = ["FineTuningCallback", "FineTuningPlan"]


@dataclass
class FineTuningPlan:
    """What the fine-tuning callbacks did to one model, read when its optimizer groups are built.

    Attributes:
        layer_map: the layout the callbacks use: explicit, or resolved once for this model from the table or
            by discovery (``None``: look it up at each use).
        novel: names of backbone parameters that are no longer pretrained (re-initialised).
        prepared: ids of the callbacks whose surgery this model has received.
    """

    layer_map: LayerMap | None = None
    novel: set[str] = field(default_factory=set)
    prepared: set[int] = field(default_factory=set)


class FineTuningCallback(TrainerCallback):
    """Base class of the callbacks that :class:`TrainerOptimizerInit` runs before building the optimizer."""

    #: Order of surgery among callbacks: re-initialise (0), then freeze (1), then Mixout (2), whatever the
    #: order of ``callbacks=[...]`` — Mixout must know which layers are no longer pretrained.
    surgery_stage: ClassVar[int] = 0
    #: True when the technique needs an optimizer that keeps L2-SP anchors (AdamWL2SP).
    requires_anchors: ClassVar[bool] = False

    _bound_to_trainer: bool = False

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        """Change ``model`` in place before its optimizer is built; record novel parameters in ``plan``."""

    def param_group_options(self) -> dict[str, Any]:
        """Keyword arguments this technique passes to :func:`transformers_fine_tuning.param_groups`."""
        return {}

    def on_train_begin(self, args, state, control, **kwargs):
        if not self._bound_to_trainer:
            raise RuntimeError(
                f"{type(self).__name__} only takes effect under transformers_fine_tuning.TrainerOptimizerInit, "
                "which runs its surgery and shapes the optimizer before training; a plain transformers.Trainer "
                "would silently ignore it. Use TrainerOptimizerInit(...) with the same arguments, or call the "
                "functional form (e.g. reinit_top_layers, param_groups) in your own loop."
            )
