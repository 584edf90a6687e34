"""The layer map of a model type outside the table (:data:`~transformers_fine_tuning.layer_maps.LAYER_MAPS`),
found from the model itself: its modules and one forward pass (in the manner of timm's automatic layer
grouping).
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .layer_maps import (
    LayerMap,
    _backbone_prefix,
    _model_type,
    _owner,
    _safe_input_embeddings,
    unwrap_adapters,
)

__all__ = ["discover_layer_map"]

logger = logging.getLogger(__name__)


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


def _described(model: nn.Module) -> str:
    """How the messages name a model: its model type and class."""
    return f"{_model_type(model)!r} ({type(model).__name__})"


def _layer_stack(
    inner: nn.Module, backbone: nn.Module, backbone_path: str, prefix: str
) -> tuple[str, _Trace | None]:
    """The layer stack's path in ``backbone`` (of the transformers model ``inner``, at ``backbone_path``,
    whose names start with ``prefix``): its one candidate, or the one the traced forward pass calls; with
    that trace (``None`` without a pass).

    Raises:
        ValueError: an encoder–decoder model, no candidate stack, or several (see :func:`discover_layer_map`).
    """
    candidates = _stack_candidates(backbone)
    what = _described(inner)

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
    return candidates[0], trace


def _pooler(inner: nn.Module, backbone: nn.Module, backbone_path: str) -> tuple[str | None, bool]:
    """The pretrained pooler's path, and whether it sits beside the backbone (then relative to ``inner``):
    the backbone's ``pooler`` child if it has parameters, else the one child beside the backbone that the
    family's pretraining model has too (:func:`_pooler_beside_backbone`); ``(None, False)`` when neither."""
    own_pooler = getattr(backbone, "pooler", None)
    if isinstance(own_pooler, nn.Module) and any(True for _ in own_pooler.parameters()):
        return "pooler", False
    if backbone_path:
        siblings = _pooler_beside_backbone(inner, backbone_path)
        if len(siblings) == 1:
            return siblings[0], True
    return None, False


def _traced_placement(
    backbone: nn.Module, trace: _Trace, prefix: str, layers: str, pooler: str | None, beside: bool
) -> tuple[bool, tuple[str, ...]]:
    """What the traced pass tells of the stack at ``layers``: whether a block ran more than once (shared
    layers, ALBERT), and the backbone modules with parameters, outside the stack and the pooler, first called
    after its last block returned, folded into their highest such ancestors (:func:`_topmost`)."""
    blocks = [f"{prefix}{layers}.{index}" for index in range(len(backbone.get_submodule(layers)))]
    shared = any(trace.calls.get(block, 0) > 1 for block in blocks)
    stack_end = max((span[1] for block in blocks if (span := _span(trace, block))), default=-1)
    inner_paths = tuple(f"{path}." for path in (layers, pooler) if path and not (path == pooler and beside))
    owners = [
        name
        for name, module in backbone.named_modules()
        if name
        and any(True for _ in module.parameters(recurse=False))
        and not f"{name}.".startswith(inner_paths)
    ]
    after = [name for name in owners if trace.first_start.get(f"{prefix}{name}", -1) > stack_end]
    return shared, _topmost(after, owners, inner_paths)


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
    layers, trace = _layer_stack(inner, backbone, backbone_path, prefix)
    pooler, beside = _pooler(inner, backbone, backbone_path)
    shared, after = False, ()
    if trace is not None:
        shared, after = _traced_placement(backbone, trace, prefix, layers, pooler, beside)
        entry = (
            f"register_layer_map({_model_type(inner)!r}, LayerMap(layers={layers!r}"
            + (f", pooler={pooler!r}" if pooler else "")
            + "))"
        )
        _verify(inner, trace, prefix, layers, after, entry, _described(inner))
    return LayerMap(
        layers=layers,
        pooler=pooler,
        shared_layers=shared,
        after_layers=after,
        pooler_beside_backbone=beside,
    )
