"""Where the parts of each supported encoder live: embeddings, the layer stack, the pooler, the head.

Every fine-tuning technique in this package needs to know the *depth* of a parameter: layer-wise
learning-rate decay scales the learning rate by depth, re-initialisation and freezing act on the top or
bottom layers, L2-SP treats the pretrained body differently from the newly added head. That knowledge is
kept here, in one table, so the grouping and surgery code knows no architecture (the same split as timm's
``param_groups_layer_decay`` and its layer maps).

Depth convention (used by LLRD, Zhang et al. 2021, "Revisiting Few-sample BERT Fine-tuning", Sec. 5.3)::

    depth 0          embeddings, and every other backbone parameter outside the layer stack and pooler
                     (ALBERT's embedding projection, ELECTRA's ``embeddings_project``, DeBERTa's relative
                     position embeddings and their LayerNorm)
    depth 1 .. L     the encoder layers, bottom to top
    depth L + 1      the pooler and the task head

With LLRD decay ξ and base learning rate η, depth d gets η·ξ^(L+1-d): the head η, the top layer η·ξ, …,
the embeddings η·ξ^(L+1).

*Novel* parameters are those outside the backbone (the task head that ``AutoModelForSequenceClassification``
adds: BERT's ``classifier``, RoBERTa/ELECTRA's ``classifier.dense`` + ``out_proj``, DistilBERT's
``pre_classifier``, DeBERTa's ``pooler`` + ``classifier``). The backbone's own pooler (BERT, ALBERT) is
pretrained. Re-initialised parameters become novel too (see ``surgery.reinit_top_layers``).

**ALBERT** shares one set of layer weights across all ``num_hidden_layers`` layers (Lan et al. 2020): its
stack is ``num_hidden_groups`` layer *groups* (1 in every released checkpoint), each applied
``num_hidden_layers / num_hidden_groups`` times. A parameter has one depth, so for ALBERT the depth units
are the groups: with one group, L = 1 — the head gets η, the shared layer η·ξ, the embeddings η·ξ². Likewise
re-initialising or freezing "the top/bottom k layers" of ALBERT acts on k groups; for a one-group model any
k ≥ 1 means the whole shared encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = [
    "LAYER_MAPS",
    "LayerMap",
    "ModelLayout",
    "model_layout",
    "register_layer_map",
]


@dataclass(frozen=True)
class LayerMap:
    """Where the layer stack and the pooler sit inside a backbone (paths relative to the backbone).

    Args:
        layers: dotted path of the ``nn.ModuleList`` that holds the encoder layers, bottom first
            (``"encoder.layer"`` for BERT).
        pooler: dotted path of the backbone's pretrained pooler, or ``None`` when it has none.
        shared_layers: True when one layer's weights are applied at several depths (ALBERT).
    """

    layers: str
    pooler: str | None = None
    shared_layers: bool = False


#: The supported architectures, keyed by ``config.model_type``.
LAYER_MAPS: dict[str, LayerMap] = {
    "bert": LayerMap(layers="encoder.layer", pooler="pooler"),
    "roberta": LayerMap(layers="encoder.layer", pooler="pooler"),
    "albert": LayerMap(layers="encoder.albert_layer_groups", pooler="pooler", shared_layers=True),
    "electra": LayerMap(layers="encoder.layer"),
    "distilbert": LayerMap(layers="transformer.layer"),
    "deberta-v2": LayerMap(layers="encoder.layer"),
}


def register_layer_map(model_type: str, layer_map: LayerMap) -> None:
    """Teach the package a new architecture, keyed by its ``config.model_type``.

    Example::

        register_layer_map("xlm-roberta", LayerMap(layers="encoder.layer", pooler="pooler"))
    """
    LAYER_MAPS[model_type] = layer_map


@dataclass(frozen=True)
class ModelLayout:
    """The depth of every parameter of one model instance, resolved from its :class:`LayerMap`.

    Attributes:
        num_layers: L, the number of depth units in the stack (ALBERT: layer groups).
        backbone_prefix: ``"bert."`` for ``BertForSequenceClassification``, ``""`` for a bare ``BertModel``.
        layers_prefix: full dotted prefix of the layer stack, ending with ``"."``.
        pooler_prefix: full dotted prefix of the pretrained pooler (``None`` if there is none).
        layer_map: the map it was resolved from.
    """

    num_layers: int
    backbone_prefix: str
    layers_prefix: str
    pooler_prefix: str | None
    layer_map: LayerMap

    def depth(self, name: str) -> int:
        """Depth of the parameter called ``name`` (see the module docstring): 0 … L + 1."""
        if name.startswith(self.layers_prefix):
            return int(name[len(self.layers_prefix) :].split(".", 1)[0]) + 1
        if self.is_pooler(name) or self.is_head(name):
            return self.num_layers + 1
        return 0

    def layer_index(self, name: str) -> int | None:
        """0-based index of the stack layer that holds ``name``, or ``None`` outside the stack."""
        depth = self.depth(name)
        return depth - 1 if name.startswith(self.layers_prefix) else None

    def is_pooler(self, name: str) -> bool:
        return self.pooler_prefix is not None and name.startswith(self.pooler_prefix)

    def is_head(self, name: str) -> bool:
        """True for parameters outside the backbone: the task head added on top of the pretrained model."""
        return not name.startswith(self.backbone_prefix)

    def depth_name(self, depth: int) -> str:
        """Readable name of a depth, used in optimizer group names."""
        if depth == 0:
            return "embeddings"
        if depth == self.num_layers + 1:
            return "head"
        return f"layer_{depth - 1}"


def _backbone_prefix(model: nn.Module) -> str:
    prefix = getattr(model, "base_model_prefix", "")
    return f"{prefix}." if prefix and isinstance(getattr(model, prefix, None), nn.Module) else ""


def _supported() -> str:
    return ", ".join(sorted(LAYER_MAPS))


def model_layout(model: nn.Module, layer_map: LayerMap | None = None) -> ModelLayout:
    """Resolve the layout of ``model`` from the table (or from an explicit ``layer_map``).

    Raises:
        ValueError: the architecture is not in the table; the message lists the supported ones and shows
            how to pass a custom map.
    """
    if layer_map is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in LAYER_MAPS:
            raise ValueError(
                f"Unsupported architecture {model_type!r} ({type(model).__name__}): the supported model types "
                f"are {_supported()}. For another encoder, describe where its layer stack and pooler live, e.g. "
                "layer_map=LayerMap(layers='encoder.layer', pooler='pooler'), and pass it as `layer_map=` "
                "(or call transformers_fine_tuning.register_layer_map(model_type, layer_map))."
            )
        layer_map = LAYER_MAPS[model_type]
    backbone = _backbone_prefix(model)
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
    pooler = backbone + layer_map.pooler if layer_map.pooler else None
    if pooler is not None and not any(n.startswith(pooler + ".") for n, _ in model.named_parameters()):
        pooler = None  # e.g. RobertaForSequenceClassification is built without its pretrained pooler
    return ModelLayout(
        num_layers=len(stack),
        backbone_prefix=backbone,
        layers_prefix=layers_path + ".",
        pooler_prefix=pooler + "." if pooler else None,
        layer_map=layer_map,
    )
