"""The builder: a run's arguments turned into what the Trainer takes — the fine-tuning callbacks (each named in
messages by the flag that asked for it), the diagnostic and pruning callbacks, the optimizer class with its
options, and the LoRA adapters. The arguments themselves stay inert values (:mod:`.arguments`)."""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import PreTrainedModel, TrainerCallback

from .adapters import apply_lora
from .arguments import DiagnosticsArguments, FineTuningArguments
from .callbacks import (
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
from .diagnostics import (
    DevFailureCallback,
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
)
from .optim import AdamWL2SP

__all__ = ["apply_adapters", "diagnostics_callbacks", "fine_tuning_callbacks", "optimizer_cls_and_kwargs"]


def _named(callback: FineTuningCallback, option: str) -> FineTuningCallback:
    """``callback``, named in messages by the flag that asked for it."""
    callback.option = option
    return callback


def fine_tuning_callbacks(
    fine_tuning: FineTuningArguments,
    *,
    seed: int = 0,
    pretrained: str | None = None,
    held_out: Any = None,
    metric: str | None = None,
) -> list[FineTuningCallback]:
    """The fine-tuning callbacks these options ask for, each named by the flags that asked for it.

    ``seed`` draws NoisyTune's noise (the job passes ``--seed``); WiSE-FT takes θ₀ from ``pretrained`` (the
    model's checkpoint) unless AdamWL2SP keeps anchors, and chooses α by ``metric`` on ``held_out`` (the
    tokenised training examples set aside, :attr:`FineTuningArguments.wise_ft_held_out_share`).
    """
    return _surgery_and_group_callbacks(fine_tuning) + _stabilizer_callbacks(
        fine_tuning, seed=seed, pretrained=pretrained, held_out=held_out, metric=metric
    )


def _surgery_and_group_callbacks(fine_tuning: FineTuningArguments) -> list[FineTuningCallback]:
    """Re-initialisation, freezing and Mixout, then what shapes the optimizer's groups: LLRD, the unfreezing
    schedules (LP-FT, gradual unfreezing) and L2-SP."""
    callbacks: list[FineTuningCallback] = []
    if fine_tuning.reinit_layers > 0:
        callback = ReinitCallback(fine_tuning.reinit_layers, reinit_pooler=fine_tuning.reinit_pooler)
        callbacks.append(_named(callback, f"--reinit_layers {fine_tuning.reinit_layers}"))
    if fine_tuning.freeze_layers > 0 or fine_tuning.freeze_embeddings:
        option = (
            f"--freeze_layers {fine_tuning.freeze_layers}"
            if fine_tuning.freeze_layers
            else "--freeze_embeddings"
        )
        callbacks.append(
            _named(
                FreezeCallback(fine_tuning.freeze_layers, embeddings=fine_tuning.freeze_embeddings), option
            )
        )
    if fine_tuning.mixout > 0:
        callbacks.append(_named(MixoutCallback(fine_tuning.mixout), f"--mixout {fine_tuning.mixout}"))
    if fine_tuning.layer_decay is not None:
        callback = LLRDCallback(
            fine_tuning.layer_decay,
            floor=fine_tuning.layer_decay_floor,
            freeze_below=fine_tuning.layer_decay_freeze_below,
        )
        callbacks.append(_named(callback, f"--layer_decay {fine_tuning.layer_decay}"))
    if fine_tuning.lp_ft_head_steps is not None:
        callback = LPFTCallback(
            fine_tuning.lp_ft_head_steps,
            head_lr=fine_tuning.lp_ft_head_lr,
            warmup=fine_tuning.unfreeze_warmup,
        )
        callbacks.append(_named(callback, f"--lp_ft_head_steps {fine_tuning.lp_ft_head_steps}"))
    if fine_tuning.gradual_unfreeze is not None:
        callback = GradualUnfreezingCallback(fine_tuning.gradual_unfreeze, warmup=fine_tuning.unfreeze_warmup)
        callbacks.append(_named(callback, f"--gradual_unfreeze {fine_tuning.gradual_unfreeze}"))
    if fine_tuning.l2sp_pretrained > 0:
        callback = L2SPCallback(
            fine_tuning.l2sp_pretrained, head_weight_decay=fine_tuning.l2sp_head_weight_decay
        )
        callbacks.append(_named(callback, f"--l2sp_pretrained {fine_tuning.l2sp_pretrained}"))
    return callbacks


def _stabilizer_callbacks(
    fine_tuning: FineTuningArguments,
    *,
    seed: int,
    pretrained: str | None,
    held_out: Any,
    metric: str | None,
) -> list[FineTuningCallback]:
    """NoisyTune, the weight averages (EMA, SWA), R3F and WiSE-FT (see :func:`fine_tuning_callbacks`)."""
    callbacks: list[FineTuningCallback] = []
    if fine_tuning.noisytune > 0:
        callbacks.append(
            _named(
                NoisyTuneCallback(fine_tuning.noisytune, seed=seed), f"--noisytune {fine_tuning.noisytune}"
            )
        )
    use = fine_tuning.weight_average_eval
    if fine_tuning.ema_decay is not None:
        callbacks.append(
            _named(
                EMACallback(fine_tuning.ema_decay, use_average=use), f"--ema_decay {fine_tuning.ema_decay}"
            )
        )
    if fine_tuning.ema_half_life is not None:
        callback = EMACallback(half_life=fine_tuning.ema_half_life, use_average=use)
        callbacks.append(_named(callback, f"--ema_half_life {fine_tuning.ema_half_life}"))
    if fine_tuning.swa_start is not None:
        callback = SWACallback(fine_tuning.swa_start, every=fine_tuning.swa_every, use_average=use)
        callbacks.append(_named(callback, f"--swa_start {fine_tuning.swa_start}"))
    if fine_tuning.r3f_lambda > 0:
        callback = R3FCallback(fine_tuning.r3f_lambda, eps=fine_tuning.r3f_eps, noise=fine_tuning.r3f_noise)
        callbacks.append(_named(callback, f"--r3f_lambda {fine_tuning.r3f_lambda}"))
    if fine_tuning.wise_ft_alpha is not None:
        callback = WiSEFTCallback(fine_tuning.wise_ft_alpha, pretrained=pretrained)
        callbacks.append(_named(callback, f"--wise_ft_alpha {fine_tuning.wise_ft_alpha}"))
    if fine_tuning.wise_ft_alphas is not None:
        callback = WiSEFTCallback(
            alphas=fine_tuning.wise_ft_grid, held_out=held_out, metric=metric, pretrained=pretrained
        )
        callbacks.append(_named(callback, f"--wise_ft_alphas {fine_tuning.wise_ft_alphas}"))
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
