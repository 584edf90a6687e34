"""Where the parts of each encoder live: embeddings, the layer stack, what sits above it, the pooler, the head.

Every fine-tuning technique in this package needs to know the *depth* of a parameter: layer-wise
learning-rate decay scales the learning rate by depth, re-initialisation and freezing act on the top or
bottom layers, L2-SP treats the pretrained body differently from the newly added head. That knowledge is
kept in one table (:mod:`~transformers_fine_tuning.layer_maps`, its names re-exported here), so the grouping
and surgery code knows no architecture (the same split as timm's ``param_groups_layer_decay`` and its layer
maps). For a model type outside the table the map is *discovered* from the model itself
(:func:`discover_layer_map`, :mod:`~transformers_fine_tuning.discovery`, in the manner of timm's automatic
layer grouping). This module resolves a model's layout from the map.

Depth convention (used by LLRD, Zhang et al. 2021, "Revisiting Few-sample BERT Fine-tuning", Sec. 5.3)::

    depth 0          embeddings, and every other backbone parameter below or beside the layer stack
                     (ALBERT's embedding projection, ELECTRA's ``embeddings_project``, DeBERTa's relative
                     position embeddings and their LayerNorm, MPNet's relative attention bias)
    depth 1 .. L     the encoder layers, bottom to top; backbone parameters applied *after* the stack
                     (ModernBERT's ``final_norm``, XLM-RoBERTa-XL's and Megatron-BERT's final LayerNorm) take
                     the top layer's depth L — they are trained, re-initialised and frozen with it
    depth L + 1      the pooler and the task head

With LLRD decay ξ and base learning rate η, depth d gets η·ξ^(L+1-d): the head η, the top layer η·ξ, …,
the embeddings η·ξ^(L+1).

*Novel* parameters are those with no pretrained value: what ``from_pretrained`` did not find in the
checkpoint and had to initialise (its loading report's MISSING and mismatched keys), for any head class — a
sequence classifier's ``classifier``, a QA model's ``qa_outputs``; a masked-LM head loaded from a masked-LM
checkpoint, or a head loaded from a checkpoint already fine-tuned, is pretrained. transformers (≥ 5) marks every
tensor it loaded (``_is_hf_initialized``); :func:`model_layout` reads that mark and remembers it per model, so it
holds after the model moves to an XLA device. A model no checkpoint was loaded into (built from a config, or
weights loaded by hand) has no such record: there the parameters outside the backbone (and its pooler) are the
novel ones, and the layout says so (``ModelLayout.novelty``, logged once). Adapter parameters (LoRA's
``lora_A``/``lora_B``) are novel, and so are re-initialised ones (see ``surgery.reinit_top_layers``); ``novel=``
adds names (or module prefixes) of your own.

**Your own module** around a transformers model (a ``PoolerClassifier`` over ``AutoModel``, a
``SentenceTransformer``): the backbone is the outermost ``PreTrainedModel`` inside it (``0.model`` of a
SentenceTransformer); what lies outside it is the head, at depth L + 1.

**ALBERT** shares one set of layer weights across all ``num_hidden_layers`` layers (Lan et al. 2020): its
stack is ``num_hidden_groups`` layer *groups* (1 in every released checkpoint), each applied
``num_hidden_layers / num_hidden_groups`` times. A parameter has one depth, so for ALBERT the depth units
are the groups: with one group, L = 1 — the head gets η, the shared layer η·ξ, the embeddings η·ξ². Likewise
re-initialising or freezing "the top/bottom k layers" of ALBERT acts on k groups; for a one-group model any
k ≥ 1 means the whole shared encoder.

**Adapters** (PEFT's ``PeftModel``, e.g. LoRA) are seen through: the layout is that of the wrapped model,
with the wrapper's name prefix (``base_model.model.``), and an adapter parameter has the depth of the layer
it adapts (``…layer.3.attention.self.query.lora_A.default.weight`` is at depth 4).
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from dataclasses import dataclass

from torch import nn

from .discovery import discover_layer_map
from .layer_maps import (
    LAYER_MAPS,
    LayerMap,
    _backbone_prefix,
    _model_type,
    _owner,
    _owner_path,
    _safe_input_embeddings,
    register_layer_map,
    unwrap_adapters,
)

__all__ = [
    "LAYER_MAPS",
    "LayerMap",
    "ModelLayout",
    "discover_layer_map",
    "input_embeddings",
    "model_layout",
    "register_layer_map",
    "remember_loaded_parameters",
    "unwrap_adapters",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelLayout:
    """The depth of every parameter of one model instance, resolved from its :class:`LayerMap`.

    Attributes:
        num_layers: L, the number of depth units in the stack (ALBERT: layer groups).
        backbone_prefix: ``"bert."`` for ``BertForSequenceClassification``, ``""`` for a bare ``BertModel``
            (under a PEFT wrapper: ``"base_model.model.bert."``).
        layers_prefix: full dotted prefix of the layer stack, ending with ``"."``.
        pooler_prefix: full dotted prefix of the pretrained pooler (``None`` if there is none).
        layer_map: the map it was resolved from.
        after_prefixes: full dotted prefixes of the backbone modules applied after the stack (depth L).
        adapter_marker: the part of a name that marks an adapter parameter (PEFT's ``"lora_"``), or
            ``None`` for a model without adapters.
        novel: names of the parameters with no pretrained value (see the module docstring).
        novelty: how ``novel`` is known: ``"checkpoint"`` (what ``from_pretrained`` initialised) or
            ``"structure"`` (no loading record: the parameters outside the backbone).
    """

    num_layers: int
    backbone_prefix: str
    layers_prefix: str
    pooler_prefix: str | None
    layer_map: LayerMap
    after_prefixes: tuple[str, ...] = ()
    adapter_marker: str | None = None
    novel: frozenset[str] = frozenset()
    novelty: str = "structure"

    def depth(self, name: str) -> int:
        """Depth of the parameter called ``name`` (see the module docstring): 0 … L + 1."""
        if name.startswith(self.layers_prefix):
            return int(name[len(self.layers_prefix) :].split(".", 1)[0]) + 1
        if self.after_prefixes and name.startswith(self.after_prefixes):
            return self.num_layers
        if self.is_pooler(name) or self.is_head(name):
            return self.num_layers + 1
        return 0

    def layer_index(self, name: str) -> int | None:
        """0-based index of the stack layer that holds ``name`` (the top one for the modules after the
        stack), or ``None`` outside the stack."""
        depth = self.depth(name)
        inside = name.startswith(self.layers_prefix) or bool(
            self.after_prefixes and name.startswith(self.after_prefixes)
        )
        return depth - 1 if inside else None

    def is_pooler(self, name: str) -> bool:
        return self.pooler_prefix is not None and name.startswith(self.pooler_prefix)

    def is_head(self, name: str) -> bool:
        """True for parameters outside the backbone (and its pooler): the task head added on top of the
        pretrained model."""
        return not name.startswith(self.backbone_prefix) and not self.is_pooler(name)

    def is_adapter(self, name: str) -> bool:
        """True for an adapter's own parameters (LoRA's ``lora_A``/``lora_B``): new, with no pretrained value."""
        return self.adapter_marker is not None and self.adapter_marker in name

    def is_novel(self, name: str) -> bool:
        """True for a parameter with no pretrained value: not in the checkpoint (the new head), or an adapter's."""
        return name in self.novel or self.is_adapter(name)

    def depth_name(self, depth: int) -> str:
        """Readable name of a depth, used in optimizer group names."""
        if depth == 0:
            return "embeddings"
        if depth == self.num_layers + 1:
            return "head"
        return f"layer_{depth - 1}"


def input_embeddings(model: nn.Module) -> nn.Module:
    """The token-embedding module of ``model``'s encoder (``get_input_embeddings()``), found through adapter
    wrappers and modules of your own around a transformers model."""
    inner, _, _ = unwrap_adapters(model)
    embeddings = _safe_input_embeddings(inner)
    return _owner(inner).get_input_embeddings() if embeddings is None else embeddings


def _supported() -> str:
    return ", ".join(sorted(LAYER_MAPS))


# ---- novelty: what has no pretrained value --------------------------------------------------------------

#: Per model, the names of the parameters from_pretrained initialised, read while its loading marks are there.
_LOADED_NOVEL: weakref.WeakKeyDictionary[nn.Module, frozenset[str]] = weakref.WeakKeyDictionary()
_NOVELTY_LOGGED: set[tuple[str, frozenset[str]]] = set()


def _novel_from_checkpoint(model: nn.Module) -> frozenset[str] | None:
    """The parameters of ``model`` that ``from_pretrained`` did not load, or ``None`` when nothing was loaded.

    transformers marks each tensor it loads (``_is_hf_initialized``). The answer is remembered per model, so it
    survives what drops the marks (a move to an XLA device makes new tensors); a re-initialised parameter loses
    its mark and counts as novel from then on.
    """
    named = list(model.named_parameters())
    loaded = [getattr(param, "_is_hf_initialized", False) for _, param in named]
    if any(loaded):
        novel = frozenset(name for (name, _), mark in zip(named, loaded, strict=True) if not mark)
        _LOADED_NOVEL[model] = novel
        return novel
    remembered = _LOADED_NOVEL.get(model)
    if remembered is None:
        return None
    names = {name for name, _ in named}
    return frozenset(remembered & names)


def remember_loaded_parameters(model: nn.Module) -> None:
    """Record what ``from_pretrained`` loaded into ``model`` before anything drops its marks (a move to an XLA
    device). :class:`~transformers_fine_tuning.TrainerOptimizerInit` calls it before placing the model."""
    _novel_from_checkpoint(model)


def model_layout(model: nn.Module, layer_map: LayerMap | None = None, *, strict: bool = False) -> ModelLayout:
    """Resolve the layout of ``model``: from an explicit ``layer_map``, else from the table
    (:data:`LAYER_MAPS`, by ``config.model_type``), else discovered from the model (:func:`discover_layer_map`,
    logged once per model type). Adapter wrappers (PEFT) are seen through.

    Args:
        model: a transformers model (task model or bare backbone), or a PEFT model around one.
        layer_map: an explicit map; overrides the table and discovery.
        strict: refuse a model type outside the table instead of discovering its map.

    Raises:
        ValueError: ``strict`` and the model type is not in the table; discovery found no layer stack or
            several; the map does not match the model. The message names the fix (``layer_map=``).
    """
    inner, wrapper, marker = unwrap_adapters(model)
    if layer_map is None:
        layer_map = _table_or_discovered(inner, strict)
    owner_path = _owner_path(inner)
    backbone = _backbone_prefix(inner, owner_path)
    stack = _checked_stack(inner, backbone, layer_map)
    pooler = _pooler_path(inner, owner_path, backbone, layer_map)
    layout = ModelLayout(
        num_layers=len(stack),
        backbone_prefix=wrapper + backbone,
        layers_prefix=wrapper + backbone + layer_map.layers + ".",
        pooler_prefix=wrapper + pooler + "." if pooler else None,
        layer_map=layer_map,
        after_prefixes=tuple(f"{wrapper}{backbone}{path}." for path in layer_map.after_layers),
        adapter_marker=marker,
    )
    return _with_novelty(model, layout)


def _table_or_discovered(model: nn.Module, strict: bool) -> LayerMap:
    """The layer map of ``model``'s type from the table, else discovered (:func:`_discovered`).

    Raises:
        ValueError: ``strict`` and the model type is not in the table.
    """
    model_type = _model_type(model)
    if model_type in LAYER_MAPS:
        return LAYER_MAPS[model_type]
    if strict:
        raise ValueError(
            f"Unsupported architecture {model_type!r} ({type(model).__name__}) in strict mode: the "
            f"supported model types are {_supported()}. Describe where its layer stack and pooler live, "
            "e.g. layer_map=LayerMap(layers='encoder.layer', pooler='pooler'), and pass it as `layer_map=` "
            "(or call transformers_fine_tuning.register_layer_map(model_type, layer_map)); without strict "
            "mode the map is discovered from the model."
        )
    return _discovered(model)


def _checked_stack(model: nn.Module, backbone: str, layer_map: LayerMap) -> nn.ModuleList:
    """The layer stack ``layer_map`` names in ``model`` (whose backbone prefix is ``backbone``), after checking
    that it is a ``ModuleList`` and that the modules it places after the stack exist.

    Raises:
        ValueError: the map does not match the model; the message names the fix (``layer_map=``).
    """
    layers_path = backbone + layer_map.layers
    try:
        stack = model.get_submodule(layers_path)
    except AttributeError as error:
        raise ValueError(
            f"{type(model).__name__} has no layer stack at {layers_path!r} (layer map {layer_map}); "
            "pass a `layer_map=` that matches this model."
        ) from error
    if not isinstance(stack, nn.ModuleList):
        raise ValueError(
            f"{layers_path!r} in {type(model).__name__} is a {type(stack).__name__}, not a ModuleList."
        )
    for path in layer_map.after_layers:
        try:
            model.get_submodule(backbone + path)
        except AttributeError as error:
            raise ValueError(
                f"{type(model).__name__} has no module {backbone + path!r} (after_layers of layer map "
                f"{layer_map}); pass a `layer_map=` that matches this model."
            ) from error
    return stack


def _pooler_path(model: nn.Module, owner_path: str, backbone: str, layer_map: LayerMap) -> str | None:
    """Full dotted path of the pretrained pooler ``layer_map`` names (inside the backbone, or beside it in the
    transformers model at ``owner_path``), or ``None`` when the map has none or ``model`` was built without
    it."""
    if not layer_map.pooler:
        return None
    owner_prefix = f"{owner_path}." if owner_path else ""
    beside = owner_prefix + layer_map.pooler
    pooler = beside if layer_map.pooler_beside_backbone else backbone + layer_map.pooler
    if not any(n.startswith(pooler + ".") for n, _ in model.named_parameters()):
        return None  # e.g. RobertaForSequenceClassification is built without its pretrained pooler
    return pooler


def _with_novelty(model: nn.Module, layout: ModelLayout) -> ModelLayout:
    """``layout`` with its novel parameters: from the checkpoint's loading record, else by structure (logged)."""
    from_checkpoint = _novel_from_checkpoint(model)
    if from_checkpoint is not None:
        return dataclasses.replace(layout, novel=from_checkpoint, novelty="checkpoint")
    outside = frozenset(name for name, _ in model.named_parameters() if layout.is_head(name))
    key = (type(model).__name__, outside)
    if key not in _NOVELTY_LOGGED:
        _NOVELTY_LOGGED.add(key)
        logger.info(
            "%s carries no record of a checkpoint load (built from a config, or its weights loaded by hand): the "
            "%d parameters outside its backbone %r are treated as new (%s). Pass novel=[...] to add others.",
            type(model).__name__,
            len(outside),
            layout.backbone_prefix,
            ", ".join(sorted(outside)[:6]) + (" …" if len(outside) > 6 else ""),
        )
    return dataclasses.replace(layout, novel=outside, novelty="structure")


# ---- discovery (:mod:`.discovery`): once per model instance, logged once per model type and map ----------

_DISCOVERED: weakref.WeakKeyDictionary[nn.Module, LayerMap] = weakref.WeakKeyDictionary()
_LOGGED: set[tuple[str | None, str, LayerMap]] = set()


def _discovered(model: nn.Module) -> LayerMap:
    """:func:`discover_layer_map`, once per model instance, logged once per model type and map."""
    layer_map = _DISCOVERED.get(model)
    if layer_map is None:
        layer_map = _DISCOVERED[model] = discover_layer_map(model)
    key = (_model_type(model), type(model).__name__, layer_map)
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.warning(
            "Model type %r (%s) is not in transformers_fine_tuning.LAYER_MAPS; discovered its layout: %s. "
            "Pass layer_map=LayerMap(...) to override, or strict mode to refuse models outside the table.",
            key[0],
            key[1],
            layer_map,
        )
    return layer_map
