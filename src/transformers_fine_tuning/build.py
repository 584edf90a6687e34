"""The builder: a run's arguments turned into what the Trainer takes — the fine-tuning callbacks (each named in
messages by the flag that asked for it), the diagnostic and pruning callbacks, the optimizer class with its
options, and the LoRA adapters. The arguments themselves stay inert values (:mod:`.arguments`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import PreTrainedModel, TrainerCallback

from .adapters import apply_lora
from .arguments import DiagnosticsArguments, FineTuningArguments
from .diagnostics import (
    DevFailureCallback,
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
)
from .optim import AdamWL2SP
from .techniques import (
    TECHNIQUES,
    EMACallback,
    FineTuningCallback,
    FreezeCallback,
    GradualUnfreezingCallback,
    L2SPCallback,
    LLRDCallback,
    LPFTCallback,
    MixoutCallback,
    NoisyTuneCallback,
    R3FCallback,
    ReinitCallback,
    SWACallback,
    WiSEFTCallback,
)

__all__ = ["apply_adapters", "diagnostics_callbacks", "fine_tuning_callbacks", "optimizer_cls_and_kwargs"]


@dataclass(frozen=True)
class _Context:
    """What the callbacks take besides the arguments (see :func:`fine_tuning_callbacks`)."""

    seed: int
    pretrained: str | None
    held_out: Any
    metric: str | None


def _wise_ft(fine_tuning: FineTuningArguments, context: _Context) -> WiSEFTCallback:
    if fine_tuning.wise_ft_alphas is None:
        return WiSEFTCallback(fine_tuning.wise_ft_alpha, pretrained=context.pretrained)
    return WiSEFTCallback(
        alphas=fine_tuning.wise_ft_grid,
        held_out=context.held_out,
        metric=context.metric,
        pretrained=context.pretrained,
    )


_BUILDERS: dict[str, Callable[[FineTuningArguments, _Context], FineTuningCallback]] = {
    "reinit": lambda a, _: ReinitCallback(a.reinit_layers, reinit_pooler=a.reinit_pooler),
    "freeze": lambda a, _: FreezeCallback(a.freeze_layers, embeddings=a.freeze_embeddings),
    "llrd": lambda a, _: LLRDCallback(
        a.layer_decay, floor=a.layer_decay_floor, freeze_below=a.layer_decay_freeze_below
    ),
    "mixout": lambda a, _: MixoutCallback(a.mixout),
    "l2sp": lambda a, _: L2SPCallback(a.l2sp_pretrained, head_weight_decay=a.l2sp_head_weight_decay),
    "lp_ft": lambda a, _: LPFTCallback(a.lp_ft_head_steps, head_lr=a.lp_ft_head_lr, warmup=a.unfreeze_warmup),
    "gradual_unfreeze": lambda a, _: GradualUnfreezingCallback(a.gradual_unfreeze, warmup=a.unfreeze_warmup),
    "ema": lambda a, _: EMACallback(
        a.ema_decay, half_life=a.ema_half_life, use_average=a.weight_average_eval
    ),
    "swa": lambda a, _: SWACallback(a.swa_start, every=a.swa_every, use_average=a.weight_average_eval),
    "r3f": lambda a, _: R3FCallback(a.r3f_lambda, eps=a.r3f_eps, noise=a.r3f_noise),
    "wise_ft": _wise_ft,
    "wise_ft_grid": _wise_ft,
    "noisytune": lambda a, context: NoisyTuneCallback(a.noisytune, seed=context.seed),
}
"""How each registered technique that acts through a callback is built from the arguments (LoRA's adapters and
the held-out split for the best evaluation are the job's: :func:`apply_adapters`, :mod:`..fine_tune`)."""


def fine_tuning_callbacks(
    fine_tuning: FineTuningArguments,
    *,
    seed: int = 0,
    pretrained: str | None = None,
    held_out: Any = None,
    metric: str | None = None,
) -> list[FineTuningCallback]:
    """The fine-tuning callbacks these options ask for, in the registry's order
    (:data:`~transformers_fine_tuning.techniques.TECHNIQUES`), each named by the flag that asked for it.

    ``seed`` draws NoisyTune's noise (the job passes ``--seed``); WiSE-FT takes θ₀ from ``pretrained`` (the
    model's checkpoint) unless AdamWL2SP keeps anchors, and chooses α by ``metric`` on ``held_out`` (the
    tokenised training examples set aside, :attr:`FineTuningArguments.wise_ft_held_out_share`).
    """
    context = _Context(seed, pretrained, held_out, metric)
    callbacks = []
    for entry in TECHNIQUES:
        option = fine_tuning.asked_for(entry)
        if option is not None and entry.name in _BUILDERS:
            callback = _BUILDERS[entry.name](fine_tuning, context)
            callback.option = option
            callbacks.append(callback)
    return callbacks


def optimizer_cls_and_kwargs(
    fine_tuning: FineTuningArguments, adamw_l2sp: bool
) -> tuple[type, dict[str, Any]] | None:
    """``optimizer_cls_and_kwargs`` for the Trainer (``--optim adamw_l2sp``), else ``None``: ``--optim``."""
    if not adamw_l2sp:
        return None
    return AdamWL2SP, {
        "bias_correction": fine_tuning.bias_correction,
        "coupled": fine_tuning.l2sp_coupled,
        "selective": fine_tuning.l2sp_selective,
    }


def apply_adapters(fine_tuning: FineTuningArguments, model: PreTrainedModel) -> nn.Module:
    """``model`` wrapped with the LoRA adapters ``--lora_r`` asks for (a ``peft.PeftModel``), else ``model``.

    Call it right after the model is loaded, with the seed set: the adapters' A is drawn from the torch
    RNG, so ``--seed`` decides their initialisation as it decides the head's.
    """
    if fine_tuning.lora_r == 0:
        return model
    targets = [name.strip() for name in (fine_tuning.lora_target_modules or "").split(",") if name.strip()]
    return apply_lora(
        model,
        fine_tuning.lora_r,
        alpha=fine_tuning.lora_alpha,
        dropout=fine_tuning.lora_dropout,
        target_modules=targets or None,
    )


def diagnostics_callbacks(
    diagnostics: DiagnosticsArguments,
    prior_loss: float,
    *,
    metric: str | None = None,
    split: str | None = None,
    baseline: float | None = None,
) -> list[TrainerCallback]:
    """The diagnostic and pruning callbacks, given the loss of predicting the label prior (see
    ``prior_loss``) and the main metric's name, split and best constant score (for the dev test).

    ``--diagnostics`` records both early tests' verdicts without acting on them; ``--prune`` acts on one.
    """
    callbacks: list[TrainerCallback] = []
    prune_loss, prune_dev = diagnostics.prune in ("loss", "both"), diagnostics.prune in ("dev", "both")
    guard = NonFiniteGuardCallback(
        rollbacks=diagnostics.rollback_on_divergence,
        lr_factor=diagnostics.rollback_lr_factor,
        snapshot_every=diagnostics.rollback_every,
        spike_threshold=diagnostics.loss_spike_threshold if diagnostics.rollback_on_spikes else None,
        spike_window=diagnostics.loss_spike_window,
    )
    if diagnostics.diagnostics:
        callbacks += [
            GradNormCallback(every=diagnostics.grad_norm_steps),
            LossSpikeCallback(
                window=diagnostics.loss_spike_window,
                threshold=diagnostics.loss_spike_threshold,
                save_checkpoint=diagnostics.save_spike_checkpoints,
            ),
            guard,
        ]
    elif diagnostics.rollback_on_divergence:
        callbacks.append(guard)
    if diagnostics.diagnostics or prune_loss:
        stop = diagnostics.stop_early_failure or prune_loss
        callbacks.append(EarlyFailureCallback(prior_loss, after=diagnostics.early_failure_after, stop=stop))
    if (diagnostics.diagnostics or prune_dev) and None not in (metric, split, baseline):
        callbacks.append(DevFailureCallback(metric, split, baseline, stop=prune_dev))
    return callbacks
