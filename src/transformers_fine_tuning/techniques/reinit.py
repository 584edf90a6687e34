"""Re-initialising the top layers (Zhang et al. 2021, "Revisiting Few-sample BERT Fine-tuning", Sec. 5.2): the
function on an ``nn.Module`` (:func:`reinit_top_layers`, for any training loop) and its Trainer callback
(:class:`ReinitCallback`)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..architectures import LayerMap, ModelLayout, model_layout
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup
from .checks import check_layer_count, refuse_adapters, warn_shared

__all__ = ["ReinitCallback", "reinit_top_layers"]

logger = logging.getLogger(__name__)


def _initializer(model: nn.Module, path: str):
    """``_init_weights`` of the innermost transformers model holding the module at ``path`` — the backbone's own
    initializer (BERT's N(0, 0.02²)) also inside a module of your own — or ``None`` for none."""
    parts = path.split(".")
    for cut in range(len(parts), -1, -1):
        owner = model.get_submodule(".".join(parts[:cut])) if cut else model
        init_weights = getattr(owner, "_init_weights", None)
        if callable(init_weights):
            return init_weights
    return None


@torch.no_grad()
def _reinitialize(model: nn.Module, path: str) -> None:
    """Re-draw the weights of the module at ``path`` with the model's own initializer
    (``PreTrainedModel._init_weights``)."""
    module = model.get_submodule(path)
    init_weights = _initializer(model, path)
    for submodule in module.modules():
        # transformers >= 5 marks loaded tensors as initialised and its init functions skip them: clear it.
        for tensor in (*submodule.parameters(recurse=False), *submodule.buffers(recurse=False), submodule):
            if hasattr(tensor, "_is_hf_initialized"):
                del tensor._is_hf_initialized
        if init_weights is not None:
            init_weights(submodule)
        elif hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()


def reinit_top_layers(
    model: nn.Module, num_layers: int, *, reinit_pooler: bool = True, layer_map: LayerMap | None = None
) -> list[str]:
    """Re-initialise the top ``num_layers`` encoder layers (and the pooler) with the model's initializer.

    Zhang et al. 2021 (Sec. 5.2) find the top layers of pretrained BERT specialised to the pretraining task
    and re-drawing them — with BERT's own N(0, 0.02²) for weights, zeros for biases, ones for LayerNorm
    gains — makes few-sample fine-tuning more stable. The initializer is the transformers model's own
    (``_init_weights``), also when it sits inside a module of your own. The draw uses the global torch RNG, so it
    follows the seed set before it (the Trainer's ``--seed``).

    The re-initialised parameters are *novel* from then on: pass the returned names as ``novel=`` to
    :func:`transformers_fine_tuning.param_groups`, so L2-SP pulls them toward zero, not toward a random draw.
    For ALBERT (one shared layer group), ``num_layers=1`` re-initialises the whole shared encoder. Backbone
    modules applied after the stack (ModernBERT's ``final_norm``) belong to the top layer and are
    re-initialised with it.

    Refused for a model with adapters (PEFT): its base layers are frozen, so re-initialised layers would
    stay at their random values for the whole run.

    Returns:
        The names of the re-initialised parameters.
    """
    layout = model_layout(model, layer_map)
    refuse_adapters(layout, "re-initialise layers of", "reinit")
    check_layer_count(num_layers, layout, f"Cannot re-initialise {num_layers} layers")
    warn_shared(layout, num_layers, "re-initialising")
    prefixes = [
        f"{layout.layers_prefix}{index}."
        for index in range(layout.num_layers - num_layers, layout.num_layers)
    ]
    if num_layers > 0:
        prefixes.extend(layout.after_prefixes)
    if reinit_pooler and layout.pooler_prefix is not None:
        prefixes.append(layout.pooler_prefix)
    for prefix in prefixes:
        _reinitialize(model, prefix[:-1])
    return [name for name, _ in model.named_parameters() if name.startswith(tuple(prefixes))]


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
        check_layer_count(self.num_layers, layout, self.describe())
        plan.reinit_layers.update(range(layout.num_layers - self.num_layers, layout.num_layers))

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        plan.novel.update(
            reinit_top_layers(
                model, self.num_layers, reinit_pooler=self.reinit_pooler, layer_map=plan.layer_map
            )
        )
