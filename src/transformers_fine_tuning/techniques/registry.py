"""The stabilising techniques, each declared once: the flags that turn it on and those that apply with it only, the
order in which techniques act on the model, which ones exclude each other, and why one cannot work on a model
with adapters.

Three readers, one declaration: the job's argument checks (:meth:`FineTuningArguments.check
<transformers_fine_tuning.arguments.FineTuningArguments.check>`, in flags, before anything is loaded), the
callbacks' checks (:meth:`FineTuningCallback.check <transformers_fine_tuning.callbacks.FineTuningCallback.check>`,
against the model, in the words the user gave: a flag or a call) and the builder
(:func:`transformers_fine_tuning.build.fine_tuning_callbacks`, which builds the callbacks in this order). The
functional forms (:func:`~transformers_fine_tuning.reinit_top_layers`, ...) refuse adapters with the same reason.

This module is plain data (no torch): every layer can read it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXCLUSIVE", "TECHNIQUES", "Technique", "order_of", "technique"]


@dataclass(frozen=True)
class Technique:
    """One technique as the registry declares it.

    Attributes:
        name: its key (a callback's ``technique``).
        flags: the ``FineTuningArguments`` fields that turn it on (any of them, away from its default).
        options: the fields that apply with it only (each refused when no technique that declares it is on).
        exclusive: the group of techniques of which one at a time may be given (:data:`EXCLUSIVE`), or ``None``.
        with_adapters: why it cannot work on a model with adapters (LoRA), or ``None`` if it can.
    """

    name: str
    flags: tuple[str, ...]
    options: tuple[str, ...] = ()
    exclusive: tuple[str, ...] = ()
    with_adapters: str | None = None


EXCLUSIVE = {
    "weight average": "one weight average at a time (each would evaluate and end training with its own); give "
    "one of them.",
    "unfreezing schedule": "one unfreezing schedule at a time; give one of them.",
    "WiSE-FT α": "give a fixed α, or a grid to choose it from, not both.",
    "held-out split": "each holds out part of the training data; give one of them (WiSE-FT's α is already chosen "
    "on its own held-out split).",
}
"""Groups of techniques that exclude each other, with what the refusal says after naming them."""

TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "lora",
        ("lora_r",),
        options=("lora_alpha", "lora_dropout", "lora_target_modules"),
    ),
    Technique(
        "reinit",
        ("reinit_layers",),
        with_adapters="the base layers are frozen there, so re-initialised layers would stay at their random values",
    ),
    Technique("freeze", ("freeze_layers", "freeze_embeddings")),
    Technique("llrd", ("layer_decay",), options=("layer_decay_floor", "layer_decay_freeze_below")),
    Technique(
        "mixout",
        ("mixout",),
        with_adapters="it mixes trained pretrained weights toward their pretrained values, and under adapters those "
        "weights are frozen at those values, so it would do nothing",
    ),
    Technique(
        "l2sp",
        ("l2sp_pretrained",),
        options=("l2sp_head_weight_decay",),
        with_adapters="the pretrained weights are frozen there, and the adapters it would pull toward their "
        "starting point have no pretrained value (LoRA starts from a random A and B = 0: the pull regularises "
        "nothing on A and is weight decay on B; use weight_decay for the adapters)",
    ),
    Technique(
        "lp_ft",
        ("lp_ft_head_steps",),
        options=("lp_ft_head_lr", "unfreeze_warmup"),
        exclusive=("unfreezing schedule",),
    ),
    Technique(
        "gradual_unfreeze",
        ("gradual_unfreeze",),
        options=("unfreeze_warmup",),
        exclusive=("unfreezing schedule",),
    ),
    Technique(
        "ema",
        ("ema_decay", "ema_half_life"),
        options=("weight_average_eval",),
        exclusive=("weight average",),
    ),
    Technique(
        "swa",
        ("swa_start",),
        options=("swa_every", "weight_average_eval"),
        exclusive=("weight average",),
    ),
    Technique("r3f", ("r3f_lambda",), options=("r3f_eps", "r3f_noise")),
    Technique(
        "wise_ft",
        ("wise_ft_alpha",),
        exclusive=("WiSE-FT α",),
        with_adapters="the pretrained weights are frozen there; interpolating the adapters would scale their update "
        "by α² (A and B both). Merge the adapters first and interpolate the merged weights",
    ),
    Technique(
        "wise_ft_grid",
        ("wise_ft_alphas",),
        options=("wise_ft_held_out", "wise_ft_held_out_seed"),
        exclusive=("WiSE-FT α", "held-out split"),
        with_adapters="the pretrained weights are frozen there; interpolating the adapters would scale their update "
        "by α² (A and B both). Merge the adapters first and interpolate the merged weights",
    ),
    Technique(
        "noisytune",
        ("noisytune",),
        with_adapters="the pretrained weights it perturbs are frozen there, so the noise would stay in them for the "
        "whole run",
    ),
    Technique("best_held_out", ("best_held_out",), exclusive=("held-out split",)),
)
"""Every technique, in the order they act on a model: adapters when it is loaded; then re-initialisation, freezing
(LLRD's threshold freezes too) and Mixout, which must know which layers are no longer pretrained; the techniques
that shape the optimizer or act during training; WiSE-FT, which copies θ₀ before NoisyTune's noise; NoisyTune
last, on the weights as every other technique left them. A callback's checks run in this order too (freezing reads
what re-initialisation plans; NoisyTune and WiSE-FT read whether L2-SP keeps anchors)."""

_BY_NAME = {entry.name: entry for entry in TECHNIQUES}


def technique(name: str) -> Technique:
    """The registry's entry ``name``.

    Raises:
        KeyError: no technique of that name, naming those there are.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no technique {name!r} in the registry; there are: {', '.join(_BY_NAME)}") from None


def order_of(name: str | None) -> int:
    """The place of technique ``name`` in :data:`TECHNIQUES`; ``-1`` for ``None`` (a technique of the user's own,
    which acts before the registered ones, in the order the callbacks were given)."""
    return -1 if name is None else TECHNIQUES.index(technique(name))
