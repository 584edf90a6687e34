"""The checks several techniques make, written once: a layer count against the model, a model with adapters
refused with the registry's reason, and the warning for a layer stack shared across depths (ALBERT)."""

from __future__ import annotations

import logging

from ..architectures import ModelLayout
from .registry import technique

__all__ = ["check_layer_count", "refuse_adapters", "warn_shared"]

logger = logging.getLogger(__name__)


def check_layer_count(num_layers: int, layout: ModelLayout, subject: str) -> None:
    """Refuse ``num_layers`` outside 0 … the model's layers (layer groups for ALBERT); ``subject`` opens the
    message: the call ("Cannot freeze 9 layers") or the callback as the user gave it."""
    if not 0 <= num_layers <= layout.num_layers:
        unit = "layer groups" if layout.layer_map.shared_layers else "layers"
        raise ValueError(
            f"{subject}: the model has {layout.num_layers} {unit} (0 … {layout.num_layers} allowed)."
        )


def refuse_adapters(layout: ModelLayout, what: str, name: str) -> None:
    """Refuse a model with adapters for technique ``name``, with the registry's reason."""
    if layout.adapter_marker is not None:
        raise ValueError(
            f"Cannot {what} a model with adapters (PEFT, {layout.adapter_marker}*): {technique(name).with_adapters}."
            " Apply it to the model before wrapping it with PEFT, or fine-tune without adapters."
        )


def warn_shared(layout: ModelLayout, num_layers: int, what: str) -> None:
    """Warn that ``what`` (re-initialising, freezing) ``num_layers`` shared layer groups affects every depth."""
    if layout.layer_map.shared_layers and num_layers > 0:
        logger.warning(
            "This model shares layer weights across depths (ALBERT): %s %d layer group(s) affects every layer "
            "that applies them — with one group, the whole encoder.",
            what,
            num_layers,
        )
