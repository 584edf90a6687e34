"""LoRA adapters (through PEFT) on any supported encoder, trained with the package's own tools.

LoRA (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1, Eq. 3) freezes a
pretrained weight W₀ and learns a low-rank update of it::

    h = W₀x + ΔWx = W₀x + (α/r)·BAx,    B ∈ ℝ^(d×r), A ∈ ℝ^(r×k), r ≪ min(d, k)

with A drawn at random and B = 0, so that training starts from the pretrained function. Hu et al. adapt the
attention's query and value projections W_q, W_v (Sec. 4.2, 7.1) and train the new task head in full.
PEFT draws A Kaiming-uniform, as the authors' reference implementation (``loralib``) does; the draw comes
from the torch RNG, so the fine-tune job's ``--seed`` decides the adapters' initialisation as it decides the
head's.

What the package's tools do on the wrapped model (a ``peft.PeftModel``; the layout sees through it, see
:mod:`transformers_fine_tuning.architectures`):

* **LLRD** — an adapter's learning rate follows the depth of the layer it adapts (``lora_A`` of layer 3 is at
  depth 4), the trained head gets η;
* **diagnostics** — gradient norms per depth are the adapters' (the frozen weights have no gradient);
* **freezing** — freezes the adapters of the bottom layers (those layers then stay exactly pretrained);
* **refused** — L2-SP (the adapters have no pretrained value to be pulled toward: A is a random draw and
  B = 0), re-initialisation (the re-drawn base layers would stay frozen at random values) and Mixout (its
  pretrained weights are frozen, it would do nothing).

PEFT is an optional dependency (``pip install 'transformers-fine-tuning[lora]'``), imported only here and
only when adapters are asked for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from torch import nn

from .architectures import LayerMap, _model_type, model_layout, unwrap_adapters

__all__ = ["LORA_TARGET_MODULES", "PEFT_INSTALL", "apply_lora", "head_modules", "peft_available"]

PEFT_INSTALL = "pip install 'transformers-fine-tuning[lora]'"

#: The attention's query and value projections (Hu et al.'s W_q, W_v) of each family in the layer table,
#: by ``config.model_type``. DeBERTa and ModernBERT compute q, k and v in one fused Linear: adapting it adapts
#: all three. Other model types fall back to PEFT's own table, else need ``target_modules``.
LORA_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "bert",
            "roberta",
            "albert",
            "electra",
            "xlm-roberta",
            "xlm-roberta-xl",
            "camembert",
            "data2vec-text",
            "roformer",
            "ernie",
            "megatron-bert",
        ),
        ("query", "value"),
    ),
    "distilbert": ("q_lin", "v_lin"),
    "deberta-v2": ("query_proj", "value_proj"),
    "deberta": ("in_proj",),
    "modernbert": ("Wqkv",),
    "mpnet": ("q", "v"),
}


def peft_available() -> bool:
    """Whether PEFT can be imported (without importing it)."""
    return importlib.util.find_spec("peft") is not None


def _import_peft() -> Any:
    try:
        import peft
    except ImportError as error:
        raise ImportError(f"LoRA adapters need PEFT, which is not installed: {PEFT_INSTALL}") from error
    return peft


def head_modules(model: nn.Module, layer_map: LayerMap | None = None) -> list[str]:
    """Names of the task model's children that hold the new head: parameters with no pretrained value (not in the
    checkpoint; see :mod:`~transformers_fine_tuning.architectures`) — ``["classifier"]`` for BERT,
    ``["pre_classifier", "classifier"]`` for DistilBERT, ``["pooler", "classifier"]`` for DeBERTa, ``["classifier"]``
    for ModernBERT, whose ``head`` is pretrained, none for a masked LM loaded from its checkpoint.

    These are the modules an adapted model trains in full (PEFT's ``modules_to_save``): they start random.
    """
    layout = model_layout(model, layer_map)
    return [
        name
        for name, child in model.named_children()
        if any(layout.is_novel(f"{name}.{param}") for param, _ in child.named_parameters())
    ]


def apply_lora(
    model: nn.Module,
    r: int,
    *,
    alpha: float | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
    modules_to_save: Sequence[str] | None = None,
    layer_map: LayerMap | None = None,
) -> nn.Module:
    """Wrap ``model`` with rank-``r`` LoRA adapters (Hu et al. 2022, Eq. 3); everything else is frozen.

    Args:
        model: a transformers model (a sequence classifier for the fine-tune job), or a module of your own
            around one, not yet adapted.
        r: the rank r ≥ 1.
        alpha: α; the update is scaled by α/r (default α = r, scale 1 — Hu et al.'s RoBERTa setting, r = α = 8).
        dropout: dropout on the adapters' input.
        target_modules: names of the Linear modules to adapt (default: :data:`LORA_TARGET_MODULES` of the
            model type — the attention's query and value projections —, else PEFT's default for it).
        modules_to_save: modules trained in full (default: :func:`head_modules`, the new head).
        layer_map: layout for an architecture outside the table.

    Returns:
        The ``peft.PeftModel`` (``PeftModelForSequenceClassification`` for a sequence classifier).

    Raises:
        ImportError: PEFT is not installed (the message says how to install it).
        ValueError: bad rank, a model that already has adapters, or no known target modules for its type.
    """
    if r < 1:
        raise ValueError(f"LoRA rank r must be >= 1, got {r}.")
    if unwrap_adapters(model)[2] is not None:
        raise ValueError("The model already has adapters (a PEFT model); apply LoRA to the plain model.")
    peft = _import_peft()
    model_type = _model_type(model)  # also of the transformers model inside a module of your own
    targets = (
        list(target_modules) if target_modules else list(LORA_TARGET_MODULES.get(model_type, ())) or None
    )
    config = peft.LoraConfig(
        r=r,
        lora_alpha=r if alpha is None else alpha,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=list(head_modules(model, layer_map) if modules_to_save is None else modules_to_save),
        task_type=peft.TaskType.SEQ_CLS
        if type(model).__name__.endswith("ForSequenceClassification")
        else None,
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as error:
        if targets is not None:
            raise
        raise ValueError(
            f"No default LoRA target modules for model type {model_type!r}: name the Linear modules to adapt "
            "(its attention's query and value projections), e.g. target_modules=['query', 'value'] or "
            f"--lora_target_modules query,value. ({error})"
        ) from error
