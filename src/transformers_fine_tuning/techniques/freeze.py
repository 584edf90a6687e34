"""Freezing the embeddings and the bottom layers: the function on an ``nn.Module`` (:func:`freeze_bottom_layers`,
for any training loop) and its Trainer callback (:class:`FreezeCallback`). Frozen parameters leave the optimizer,
as Composer's layer freezing removes them."""

from __future__ import annotations

import logging

from torch import nn

from ..architectures import LayerMap, ModelLayout, model_layout
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup
from .checks import check_layer_count, warn_shared

__all__ = ["FreezeCallback", "freeze_bottom_layers", "refuse_frozen_reinit"]

logger = logging.getLogger(__name__)


def _refuse_tied_embeddings(model: nn.Module, layout: ModelLayout) -> None:
    """Freezing the embeddings of a model whose head shares their matrix (a masked-LM decoder tied to the word
    embeddings) would freeze that head too: refused, with the two ways out."""
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    for shared in names.values():
        embedding = [name for name in shared if layout.depth(name) == 0]
        outside = [name for name in shared if layout.depth(name) != 0]
        if len(shared) > 1 and embedding and outside:
            raise ValueError(
                f"Cannot freeze the embeddings: {embedding[0]} is tied to {outside[0]} (the same tensor), so the "
                "head would be frozen with them. Freeze the layers only (embeddings=False / --freeze_embeddings "
                "false), or untie them first (config.tie_word_embeddings=False) and freeze the embeddings alone."
            )


def freeze_bottom_layers(
    model: nn.Module, num_layers: int, *, embeddings: bool = True, layer_map: LayerMap | None = None
) -> list[str]:
    """Freeze the embeddings (depth 0) and the bottom ``num_layers`` encoder layers.

    Frozen parameters get ``requires_grad=False``; :func:`transformers_fine_tuning.param_groups` leaves them
    out of the optimizer, so neither momentum nor weight decay can move them (as Composer's layer freezing
    removes them from the optimizer). For ALBERT (one shared layer group), ``num_layers=1`` freezes the
    whole shared encoder.

    Refused when the embeddings share their matrix with a head (a masked-LM decoder tied to the word
    embeddings): freezing one would freeze the other.

    Under adapters (PEFT) the pretrained weights are frozen already; what is frozen here is what still
    trains at those depths — the adapters of the bottom layers, which then stay at their initialisation
    (LoRA's B = 0: those layers stay exactly pretrained), as if only the upper layers had been adapted.

    Returns:
        The names of the parameters it froze (those that were trainable).
    """
    layout = model_layout(model, layer_map)
    check_layer_count(num_layers, layout, f"Cannot freeze {num_layers} layers")
    warn_shared(layout, num_layers, "freezing")
    if embeddings:
        _refuse_tied_embeddings(model, layout)
    frozen = []
    for name, param in model.named_parameters():
        depth = layout.depth(name)
        if param.requires_grad and ((embeddings and depth == 0) or 1 <= depth <= num_layers):
            param.requires_grad_(False)
            frozen.append(name)
    if layout.adapter_marker is not None and not frozen and (embeddings or num_layers > 0):
        logger.warning(
            "Freezing the embeddings/bottom %d layers of a model with adapters froze nothing: nothing "
            "trains there (no adapter targets those modules).",
            num_layers,
        )
    return frozen


def refuse_frozen_reinit(
    plan: FineTuningPlan, layout: ModelLayout, name: str, bottom_layers: int, how: str, fix: str
) -> None:
    """Refuse freezing the bottom ``bottom_layers`` layers where a :class:`~.reinit.ReinitCallback` re-initialises
    one: it would stay frozen at its random values. ``how`` says how ``name`` comes to freeze them."""
    if set(range(bottom_layers)) & plan.reinit_layers:
        reinit = next(cb for cb in plan.checked if cb.technique == "reinit")
        raise ValueError(
            f"{reinit.describe()} and {name} overlap on a {layout.num_layers}-layer model: {how}a re-initialised "
            f"layer would stay frozen at its random values. {fix}"
        )


class FreezeCallback(FineTuningCallback):
    """Freeze the embeddings (``embeddings=True``) and the bottom ``num_layers`` layers.

    See :func:`transformers_fine_tuning.freeze_bottom_layers`: frozen parameters are left out of the
    optimizer, so neither momentum nor weight decay moves them. Refuses layers that a
    :class:`~.reinit.ReinitCallback` re-initialises: they would stay frozen at their random values.
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
        check_layer_count(self.num_layers, layout, self.describe())
        refuse_frozen_reinit(
            plan, layout, self.describe(), self.num_layers, "", "Re-initialise or freeze fewer layers."
        )

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        freeze_bottom_layers(model, self.num_layers, embeddings=self.embeddings, layer_map=plan.layer_map)
