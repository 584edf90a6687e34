"""Where the parts of each encoder live: embeddings, the layer stack, what sits above it, the pooler, the head.

Every fine-tuning technique in this package needs to know the *depth* of a parameter: layer-wise
learning-rate decay scales the learning rate by depth, re-initialisation and freezing act on the top or
bottom layers, L2-SP treats the pretrained body differently from the newly added head. That knowledge is
kept here, in one table, so the grouping and surgery code knows no architecture (the same split as timm's
``param_groups_layer_decay`` and its layer maps). For a model type outside the table the map is *discovered*
from the model itself (:func:`discover_layer_map`, in the manner of timm's automatic layer grouping).

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

import copy
import dataclasses
import itertools
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedModel

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


def input_embeddings(model: nn.Module) -> nn.Module:
    """The token-embedding module of ``model``'s encoder (``get_input_embeddings()``), found through adapter
    wrappers and modules of your own around a transformers model."""
    inner, _, _ = unwrap_adapters(model)
    embeddings = _safe_input_embeddings(inner)
    return _owner(inner).get_input_embeddings() if embeddings is None else embeddings


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


def _supported() -> str:
    return ", ".join(sorted(LAYER_MAPS))


def _model_type(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    if config is None and isinstance(model, nn.Module) and not _is_transformers_model(model):
        try:
            config = getattr(_owner(model), "config", None)
        except ValueError:
            return None
    return getattr(config, "model_type", None)


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
        model_type = _model_type(inner)
        if model_type in LAYER_MAPS:
            layer_map = LAYER_MAPS[model_type]
        elif strict:
            raise ValueError(
                f"Unsupported architecture {model_type!r} ({type(inner).__name__}) in strict mode: the "
                f"supported model types are {_supported()}. Describe where its layer stack and pooler live, "
                "e.g. layer_map=LayerMap(layers='encoder.layer', pooler='pooler'), and pass it as `layer_map=` "
                "(or call transformers_fine_tuning.register_layer_map(model_type, layer_map)); without strict "
                "mode the map is discovered from the model."
            )
        else:
            layer_map = _discovered(inner)
    owner_path = _owner_path(inner)
    backbone = _backbone_prefix(inner, owner_path)
    owner_prefix = f"{owner_path}." if owner_path else ""
    layers_path = backbone + layer_map.layers
    try:
        stack = inner.get_submodule(layers_path)
    except AttributeError as error:
        raise ValueError(
            f"{type(inner).__name__} has no layer stack at {layers_path!r} (layer map {layer_map}); "
            "pass a `layer_map=` that matches this model."
        ) from error
    if not isinstance(stack, nn.ModuleList):
        raise ValueError(
            f"{layers_path!r} in {type(inner).__name__} is a {type(stack).__name__}, not a ModuleList."
        )
    for path in layer_map.after_layers:
        try:
            inner.get_submodule(backbone + path)
        except AttributeError as error:
            raise ValueError(
                f"{type(inner).__name__} has no module {backbone + path!r} (after_layers of layer map "
                f"{layer_map}); pass a `layer_map=` that matches this model."
            ) from error
    pooler = None
    if layer_map.pooler:
        beside = owner_prefix + layer_map.pooler
        pooler = beside if layer_map.pooler_beside_backbone else backbone + layer_map.pooler
        if not any(n.startswith(pooler + ".") for n, _ in inner.named_parameters()):
            pooler = None  # e.g. RobertaForSequenceClassification is built without its pretrained pooler
    layout = ModelLayout(
        num_layers=len(stack),
        backbone_prefix=wrapper + backbone,
        layers_prefix=wrapper + layers_path + ".",
        pooler_prefix=wrapper + pooler + "." if pooler else None,
        layer_map=layer_map,
        after_prefixes=tuple(f"{wrapper}{backbone}{path}." for path in layer_map.after_layers),
        adapter_marker=marker,
    )
    return _with_novelty(model, layout)


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


# ---- discovery: the layer map of a model type outside the table, found from the model itself -------------

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


def _stack_candidates(backbone: nn.Module) -> list[str]:
    """Outermost ``ModuleList``s of the backbone whose entries are repeated blocks: one class, with parameters."""
    found: list[str] = []
    for name, module in backbone.named_modules():
        if not name or not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if any(name.startswith(outer + ".") for outer in found):
            continue
        kinds = {type(block) for block in module}
        blocks = len(kinds) == 1 and all(
            any(True for _ in block.children()) and any(True for _ in block.parameters()) for block in module
        )  # blocks, not a list of leaf layers (MarkupLM's embedding tables, XLM's per-layer LayerNorms)
        if blocks:
            found.append(name)
    return found


def _topmost(paths: list[str], owners: list[str], keep_out: tuple[str, ...]) -> tuple[str, ...]:
    """``paths`` (parameter-owning modules) folded into their highest ancestors all of whose parameter-owning
    modules are in ``paths`` and that hold none of ``keep_out`` (prefixes of the stack and the pooler)."""
    chosen = set(paths)
    folded: list[str] = []
    for path in paths:
        top, parts = path, path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            ancestor = ".".join(parts[:cut])
            inside = {owner for owner in owners if owner.startswith(ancestor + ".")}
            if any(other.startswith(ancestor + ".") for other in keep_out) or not inside <= chosen:
                break
            top = ancestor
        if top not in folded:
            folded.append(top)
    return tuple(folded)


@dataclass
class _Trace:
    """Order of the module calls of one forward pass: first start, last end and number of calls per module."""

    first_start: dict[str, int] = field(default_factory=dict)
    last_end: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _trace_forward(model: nn.Module) -> _Trace | None:
    """Call the model once on four tokens, in eval mode and without gradients, recording the module calls.

    The RNG is left as it was (dropout is off and the RNG state restored), so the seed still decides what
    comes after. ``None`` when the model cannot be called that way (a model that needs other inputs).
    """
    trace = _Trace()
    clock = itertools.count()
    handles = []

    def on_start(name: str):
        def hook(module, args):
            trace.first_start.setdefault(name, next(clock))
            trace.calls[name] = trace.calls.get(name, 0) + 1

        return hook

    def on_end(name: str):
        def hook(module, args, output):
            trace.last_end[name] = next(clock)

        return hook

    try:
        device = next(model.parameters()).device
    except StopIteration:
        return None
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(on_start(name)))
        handles.append(module.register_forward_hook(on_end(name)))
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), _eval_mode(model):
            model(input_ids=torch.tensor([[3, 4, 5, 6]], device=device))
    except Exception as error:  # any model-specific failure: discovery goes on without the trace
        logger.debug("Discovery forward pass of %s failed: %s", type(model).__name__, error)
        return None
    finally:
        for handle in handles:
            handle.remove()
    return trace


def _pooler_beside_backbone(model: nn.Module, backbone: str) -> list[str]:
    """Children of the task model beside the backbone that the family's pretraining model also has, with the
    same parameter names and shapes — pretrained, not part of the new head (ModernBERT's ``head``)."""
    from transformers.models.auto import modeling_auto

    model_type = _model_type(model)
    class_name = modeling_auto.MODEL_FOR_PRETRAINING_MAPPING_NAMES.get(
        model_type
    ) or modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(model_type)
    if not isinstance(class_name, str) or type(model).__name__ == class_name:
        return []
    try:
        import transformers

        pretraining_cls = getattr(transformers, class_name)
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            pretraining = pretraining_cls(copy.deepcopy(model.config))
    except Exception as error:  # a pretraining class that cannot be built from this config: no such pooler
        logger.debug("Cannot build %s to compare its parameters: %s", class_name, error)
        return []
    shapes = {name: tuple(param.shape) for name, param in pretraining.named_parameters()}
    found = []
    for child, module in model.named_children():
        params = [(f"{child}.{name}", tuple(p.shape)) for name, p in module.named_parameters()]
        if child != backbone and params and all(shapes.get(name) == shape for name, shape in params):
            found.append(child)
    return found


def _span(trace: _Trace, path: str) -> tuple[int, int] | None:
    """When the module at ``path`` ran in the traced pass: the first start and last end of it and of everything
    inside it (a model that calls a block's ``forward`` directly fires no hook of the block itself)."""
    inside = [name for name in trace.first_start if name == path or name.startswith(f"{path}.")]
    if not inside:
        return None
    return min(trace.first_start[n] for n in inside), max(trace.last_end.get(n, -1) for n in inside)


def _verify(
    owner: nn.Module, trace: _Trace, prefix: str, layers: str, after: tuple[str, ...], entry: str, what: str
) -> None:
    """Refuse a discovered map that the traced pass contradicts: the input embeddings run before the first
    layer, the layers run in their list's order, nothing found "after the stack" is the embeddings."""
    size = len(owner.get_submodule(prefix + layers))
    spans = [_span(trace, f"{prefix}{layers}.{index}") for index in range(size)]
    problems = []
    if all(span is not None for span in spans):
        starts = [span[0] for span in spans]
        if starts != sorted(starts):
            problems.append(f"its layers ran in the order {sorted(range(size), key=starts.__getitem__)}")
    embedding_module = _safe_input_embeddings(owner)
    embeddings = next((name for name, module in owner.named_modules() if module is embedding_module), None)
    if embeddings is not None and spans[0] is not None:
        span = _span(trace, embeddings)
        if span is not None and span[0] > spans[0][0]:
            problems.append(f"its input embeddings ({embeddings}) ran after the first layer")
        if any(f"{embeddings}.".startswith(f"{prefix}{path}.") for path in after):
            problems.append(f"its input embeddings ({embeddings}) were found after the stack")
    if problems:
        raise ValueError(
            f"The layer map discovered for {what} does not hold up: {'; '.join(problems)}. Add its entry to the "
            f"table before fine-tuning it: {entry}"
        )


def discover_layer_map(model: nn.Module) -> LayerMap:
    """Find the layer map of ``model`` from its modules and one forward pass, for a model type outside the table.

    * **layer stack**: the backbone's (``base_model_prefix``) outermost ``nn.ModuleList`` of repeated blocks —
      entries of one class, each with submodules and parameters — that the forward pass calls; its order is
      taken as bottom first. Entries called more than once per pass mean shared layers (ALBERT);
    * **pooler**: the backbone's child named ``pooler``, if it has parameters; else a child of the task model
      beside the backbone that the family's pretraining model (``AutoModelForPreTraining``, else
      ``AutoModelForMaskedLM``, built on the meta device) has too, with the same parameter names and shapes
      (ModernBERT's ``head``);
    * **after the stack**: backbone modules with parameters, outside the stack and the pooler, first called
      after the stack's last block has returned (a pre-LN model's final LayerNorm).

    Without a forward pass (a model that needs other inputs than ``input_ids``), the stack is found from the
    modules alone and nothing counts as after it.

    Raises:
        ValueError: an encoder–decoder model, no candidate stack, or several; the message names the
            candidates and the fix (``layer_map=LayerMap(...)``).
    """
    inner = _owner(unwrap_adapters(model)[0])
    backbone_path = _backbone_prefix(inner)[:-1]
    backbone = inner.get_submodule(backbone_path) if backbone_path else inner
    prefix = f"{backbone_path}." if backbone_path else ""
    candidates = _stack_candidates(backbone)
    what = f"{_model_type(inner)!r} ({type(inner).__name__})"

    def listed(paths: list[str]) -> str:
        return "; ".join(
            f"{path!r} ({len(backbone.get_submodule(path))} × {type(backbone.get_submodule(path)[0]).__name__})"
            for path in paths
        )

    fix = (
        "Pass layer_map=LayerMap(layers=<path of the encoder's layer ModuleList, relative to "
        f"{backbone_path or 'the model'!r}>, pooler=...) to the function or Trainer, or register one with "
        "transformers_fine_tuning.register_layer_map(model_type, layer_map)."
    )
    if getattr(getattr(inner, "config", None), "is_encoder_decoder", False):
        raise ValueError(
            f"Cannot discover the layer map of {what}: it is an encoder–decoder model, whose depth is not one "
            f"stack (candidates: {listed(candidates) or 'none'}). This package fine-tunes encoders; for this "
            f"model describe the stack to use. {fix}"
        )
    trace = _trace_forward(inner)
    if trace is not None:
        called = [path for path in candidates if _span(trace, f"{prefix}{path}.0") is not None]
        candidates = called or candidates
    if not candidates:
        raise ValueError(
            f"Cannot discover the layer map of {what}: its backbone has no ModuleList of repeated blocks. {fix}"
        )
    if len(candidates) > 1:
        raise ValueError(
            f"Cannot discover the layer map of {what}: several candidate layer stacks, {listed(candidates)}. "
            f"{fix}"
        )
    layers = candidates[0]
    stack = backbone.get_submodule(layers)
    pooler, beside = None, False
    own_pooler = getattr(backbone, "pooler", None)
    if isinstance(own_pooler, nn.Module) and any(True for _ in own_pooler.parameters()):
        pooler = "pooler"
    elif backbone_path:
        siblings = _pooler_beside_backbone(inner, backbone_path)
        if len(siblings) == 1:
            pooler, beside = siblings[0], True
    shared, after = False, ()
    if trace is not None:
        blocks = [f"{prefix}{layers}.{index}" for index in range(len(stack))]
        shared = any(trace.calls.get(block, 0) > 1 for block in blocks)
        stack_end = max((span[1] for block in blocks if (span := _span(trace, block))), default=-1)
        inner_paths = tuple(
            f"{path}." for path in (layers, pooler) if path and not (path == pooler and beside)
        )
        owners = [
            name
            for name, module in backbone.named_modules()
            if name
            and any(True for _ in module.parameters(recurse=False))
            and not f"{name}.".startswith(inner_paths)
        ]
        after = [name for name in owners if trace.first_start.get(f"{prefix}{name}", -1) > stack_end]
        after = _topmost(after, owners, inner_paths)
        entry = (
            f"register_layer_map({_model_type(inner)!r}, LayerMap(layers={layers!r}"
            + (f", pooler={pooler!r}" if pooler else "")
            + "))"
        )
        _verify(inner, trace, prefix, layers, after, entry, what)
    return LayerMap(
        layers=layers,
        pooler=pooler,
        shared_layers=shared,
        after_layers=after,
        pooler_beside_backbone=beside,
    )
