"""NoisyTune (Wu et al. 2022, "NoisyTune: A Little Noise Can Help You Finetune Pretrained Language Models Better",
Eq. 1): the function on an ``nn.Module`` (:func:`apply_noisytune`, for any training loop) and its Trainer callback
(:class:`NoisyTuneCallback`).

The pretrained weights θ₀ mean one thing for every technique — the weights as loaded, before any noise: L2-SP's
anchors, Mixout's targets, WiSE-FT's θ₀ are the clean pretrained values; NoisyTune only moves the point training
starts from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping

import torch
from torch import Tensor, nn

from ..architectures import LayerMap, ModelLayout, model_layout
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup, keeps_anchors
from .checks import refuse_adapters

__all__ = ["NoisyTuneCallback", "apply_noisytune"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def apply_noisytune(
    model: nn.Module,
    noise_lambda: float = 0.15,
    *,
    seed: int = 0,
    exclude: Iterable[str] = (),
    clean: MutableMapping[str, Tensor] | None = None,
    layer_map: LayerMap | None = None,
) -> list[str]:
    """Perturb the pretrained parameters with uniform noise scaled by each one's own spread (NoisyTune).

    Wu et al. 2022, Eq. 1: before fine-tuning, every parameter matrix W of the pretrained model becomes::

        W̃ = W + U(−λ/2, λ/2) · std(W)

    elementwise independent uniform noise, scaled by the standard deviation of that matrix's own entries
    (``torch.std``, with Bessel's correction, as the authors' code computes it), λ = 0.15 by default (their best
    value). It counters the pretrained weights' overfitting to the pretraining tasks by a small, per-matrix
    calibrated perturbation before fine-tuning starts.

    Which parameters: every *trainable pretrained* parameter with at least two entries — weight matrices,
    embeddings, biases and LayerNorm parameters alike, as the authors' code perturbs every parameter (a
    constant one, e.g. a LayerNorm gain of ones, has std 0 and stays as it is). Left out: the new task head and
    the names in ``exclude`` (re-initialised layers: not pretrained; noise on a random draw is another random
    draw), frozen parameters (frozen means unchanged) and one-element parameters (no std). ALBERT's shared
    layer is one set of matrices and is perturbed once.

    The uniform draws come from a CPU generator seeded with ``seed``, in the model's parameter order — the same
    draws on CPU, CUDA and TPU, and none taken from the global RNG (the head's initialisation and the dropout
    masks of a seed are the same with and without NoisyTune); the scale std(W) is computed where W lives.
    Pass ``clean`` (a dict) to receive each perturbed parameter's value before the noise, e.g. as L2-SP anchors:
    :class:`~transformers_fine_tuning.NoisyTuneCallback` makes L2-SP pull toward those clean pretrained
    weights, not toward the noisy ones (the noise moves the starting point, not the prior).

    Refused for a model with adapters (PEFT): the weights it would perturb are frozen there, so the noise would
    stay for the whole run instead of being trained from.

    Returns:
        The names of the perturbed parameters (also logged, with λ and the seed, at INFO level).
    """
    if noise_lambda < 0.0:
        raise ValueError(f"NoisyTune's noise intensity λ must be >= 0, got {noise_lambda}.")
    layout = model_layout(model, layer_map)
    refuse_adapters(layout, "apply NoisyTune to", "noisytune")
    targets = _noisytune_targets(model, layout, exclude)
    _add_noise(targets, noise_lambda, seed, clean)
    perturbed = [name for name, _ in targets]
    logger.info(
        "NoisyTune: uniform noise U(-λ/2, λ/2)·std(W) added to %d pretrained parameters (λ = %g, seed %d).",
        len(perturbed),
        noise_lambda,
        seed,
    )
    return perturbed


def _noisytune_targets(
    model: nn.Module, layout: ModelLayout, exclude: Iterable[str]
) -> list[tuple[str, nn.Parameter]]:
    """The parameters NoisyTune perturbs, in the model's order: trainable, pretrained, not in ``exclude``,
    with at least two entries (see :func:`apply_noisytune`)."""
    excluded = set(exclude)
    return [
        (name, param)
        for name, param in model.named_parameters()
        if param.requires_grad and param.numel() >= 2 and not layout.is_novel(name) and name not in excluded
    ]


def _add_noise(
    targets: list[tuple[str, nn.Parameter]],
    noise_lambda: float,
    seed: int,
    clean: MutableMapping[str, Tensor] | None,
) -> None:
    """Add U(−λ/2, λ/2) · std(W) to each of ``targets`` in place (Wu et al. 2022, Eq. 1), the draws from a CPU
    generator seeded with ``seed``; each value before the noise into ``clean``, on the host, if given."""
    # every std at once: one host synchronisation (one graph on XLA), not one per parameter
    stds = torch.stack([param.float().std() for _, param in targets]).tolist() if targets else []
    generator = torch.Generator().manual_seed(seed)
    for (name, param), std in zip(targets, stds, strict=True):
        noise = (torch.rand(param.shape, generator=generator) - 0.5) * (noise_lambda * std)
        if clean is not None:  # on the host: no device memory, and no lazy XLA tensor of the old values
            clean[name] = param.detach().to("cpu", copy=True)
        param.add_(noise.to(param.device, param.dtype))


class NoisyTuneCallback(FineTuningCallback):
    """NoisyTune (Wu et al. 2022, Eq. 1): uniform noise U(−λ/2, λ/2)·std(W) on every pretrained matrix W, once,
    before training. See :func:`transformers_fine_tuning.apply_noisytune` for which parameters.

    Runs after re-initialisation, freezing and Mixout (so re-initialised layers and frozen ones get no noise,
    and Mixout's targets are the clean pretrained weights). When the optimizer keeps L2-SP anchors, they are the
    clean pretrained weights too: L2-SP regularises toward what pretraining learnt, not toward a random
    perturbation of it (the clean values are kept until the optimizer copies them, then dropped). ``seed``
    draws the noise (the fine-tune job passes ``--seed``); the global RNG is not touched.
    """

    technique = "noisytune"

    def __init__(self, noise_lambda: float = 0.15, *, seed: int = 0) -> None:
        if not noise_lambda >= 0.0:
            raise ValueError(f"NoisyTuneCallback: noise_lambda must be >= 0, got {noise_lambda}.")
        self.noise_lambda = noise_lambda
        self.seed = seed
        self.perturbed: list[str] = []
        self._clean_anchors = False

    def _arguments(self) -> str:
        return f"{self.noise_lambda}" + (f", seed={self.seed}" if self.seed else "")

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        self._clean_anchors = keeps_anchors(plan, optimizer)

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        self.perturbed = apply_noisytune(
            model,
            self.noise_lambda,
            seed=self.seed,
            exclude=plan.novel,
            clean=plan.anchors if self._clean_anchors else None,
            layer_map=plan.layer_map,
        )
