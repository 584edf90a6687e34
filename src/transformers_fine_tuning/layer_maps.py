"""The layer-map table: where each supported encoder keeps its layer stack and pooler (:class:`LayerMap`,
keyed by ``config.model_type``), and how the encoder is found inside a model — through adapter wrappers
(PEFT) and modules of your own around a transformers model. :mod:`~transformers_fine_tuning.architectures`
resolves a model's layout from it; :mod:`~transformers_fine_tuning.discovery` finds the map of a model type
outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn
from transformers import PreTrainedModel

__all__ = ["LAYER_MAPS", "LayerMap", "register_layer_map", "unwrap_adapters"]


@dataclass(frozen=True)
class LayerMap:
    """Where the layer stack and the pooler sit inside a backbone (paths relative to the backbone).

    Args:
        layers: dotted path of the ``nn.ModuleList`` that holds the encoder layers, bottom first
            (``"encoder.layer"`` for BERT).
        pooler: dotted path of the backbone's pretrained pooler, or ``None`` when it has none.
        shared_layers: True when one layer's weights are applied at several depths (ALBERT).
        after_layers: dotted paths of backbone modules applied after the stack (a pre-LN model's final
            LayerNorm: ModernBERT's ``"final_norm"``); they take the top layer's depth.
        pooler_beside_backbone: True when the pretrained pooler is not inside the backbone but beside it in
            the task model, its path relative to the task model (ModernBERT's ``head``).
    """

    layers: str
    pooler: str | None = None
    shared_layers: bool = False
    after_layers: tuple[str, ...] = field(default=())
    pooler_beside_backbone: bool = False


#: The supported architectures, keyed by ``config.model_type``. The tests build a tiny random model of each
#: and check that :func:`discover_layer_map` finds the same layout.
LAYER_MAPS: dict[str, LayerMap] = {
    "bert": LayerMap(layers="encoder.layer", pooler="pooler"),
    "roberta": LayerMap(layers="encoder.layer", pooler="pooler"),
    "albert": LayerMap(layers="encoder.albert_layer_groups", pooler="pooler", shared_layers=True),
    "electra": LayerMap(layers="encoder.layer"),
    "distilbert": LayerMap(layers="transformer.layer"),
    "deberta-v2": LayerMap(layers="encoder.layer"),
    "deberta": LayerMap(layers="encoder.layer"),
    "xlm-roberta": LayerMap(layers="encoder.layer", pooler="pooler"),
    "xlm-roberta-xl": LayerMap(layers="encoder.layer", pooler="pooler", after_layers=("encoder.LayerNorm",)),
    "camembert": LayerMap(layers="encoder.layer", pooler="pooler"),
    "data2vec-text": LayerMap(layers="encoder.layer", pooler="pooler"),
    "modernbert": LayerMap(
        layers="layers", pooler="head", after_layers=("final_norm",), pooler_beside_backbone=True
    ),
    "mpnet": LayerMap(layers="encoder.layer", pooler="pooler"),
    "roformer": LayerMap(layers="encoder.layer"),
    "ernie": LayerMap(layers="encoder.layer", pooler="pooler"),
    "megatron-bert": LayerMap(layers="encoder.layer", pooler="pooler", after_layers=("encoder.ln",)),
}


def register_layer_map(model_type: str, layer_map: LayerMap) -> None:
    """Teach the package a new architecture, keyed by its ``config.model_type``.

    Example::

        register_layer_map("nystromformer", LayerMap(layers="encoder.layer"))
    """
    LAYER_MAPS[model_type] = layer_map


def _is_transformers_model(module: nn.Module) -> bool:
    return isinstance(module, PreTrainedModel)


def _owner_path(model: nn.Module) -> str:
    """Path of the transformers model that holds the encoder: ``""`` for a transformers model itself (or a module
    that holds none, taken as the model), else the outermost ``PreTrainedModel`` inside a module of your own
    (``"encoder"`` of a ``PoolerClassifier``, ``"0.model"`` of a SentenceTransformer).

    Raises:
        ValueError: the module holds several transformers models side by side.
    """
    if _is_transformers_model(model) or not isinstance(model, nn.Module):
        return ""
    found: list[str] = []
    for name, module in model.named_modules():
        if name and _is_transformers_model(module) and not any(name.startswith(f"{o}.") for o in found):
            found.append(name)
    if len(found) <= 1:
        return found[0] if found else ""  # none: the module is taken as the model itself
    what = type(model).__name__
    raise ValueError(
        f"{what} holds several transformers models side by side ({', '.join(found)}): which one is the encoder "
        "to fine-tune is ambiguous. Fine-tune one at a time, or pass layer_map=LayerMap(...) and call the "
        "functions on that submodule."
    )


def _owner(model: nn.Module) -> nn.Module:
    path = _owner_path(model)
    return model.get_submodule(path) if path else model


def _backbone_prefix(model: nn.Module, owner_path: str | None = None) -> str:
    """Dotted prefix (ending with ``"."``, or ``""``) of the backbone: the owner's ``base_model_prefix`` child.
    ``owner_path``: :func:`_owner_path` of ``model``, when the caller has it already."""
    owner_path = _owner_path(model) if owner_path is None else owner_path
    owner = model.get_submodule(owner_path) if owner_path else model
    prefix = getattr(owner, "base_model_prefix", "")
    inner = f"{prefix}." if prefix and isinstance(getattr(owner, prefix, None), nn.Module) else ""
    return f"{owner_path}.{inner}" if owner_path else inner


def _safe_input_embeddings(model: nn.Module) -> nn.Module | None:
    """``model.get_input_embeddings()``, or ``None`` where the model has none (a module of your own)."""
    getter = getattr(model, "get_input_embeddings", None)
    if not callable(getter):
        return None
    try:
        return getter()
    except (AttributeError, NotImplementedError):
        return None


def unwrap_adapters(model: nn.Module) -> tuple[nn.Module, str, str | None]:
    """The model under an adapter wrapper, the wrapper's name prefix, and the adapters' name marker.

    A PEFT ``PeftModel`` holds the transformers model at ``base_model.model`` (``get_base_model()``) and
    marks its tuner's parameters with the tuner's prefix (LoRA: ``lora_``). Any other model is returned as
    it is, with prefix ``""`` and no marker. PEFT itself is not imported.
    """
    get_base_model = getattr(type(model), "get_base_model", None)
    if not callable(get_base_model):
        return model, "", None
    inner = model.get_base_model()
    if inner is model or not isinstance(inner, nn.Module):
        return model, "", None
    prefix = next((f"{name}." for name, module in model.named_modules() if module is inner and name), "")
    marker = getattr(getattr(model, "base_model", None), "prefix", None)
    return inner, prefix, marker if isinstance(marker, str) and marker else None


def _model_type(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    if config is None and isinstance(model, nn.Module) and not _is_transformers_model(model):
        try:
            config = getattr(_owner(model), "config", None)
        except ValueError:
            return None
    return getattr(config, "model_type", None)
