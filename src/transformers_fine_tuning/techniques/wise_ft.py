"""WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", Eq. 1): after fine-tuning,
θ_α = (1 − α)·θ₀ + α·θ_ft for the pretrained parameters (:func:`wise_ft_interpolate`, as ``torch.lerp``: exactly θ₀
at α = 0 and exactly θ_ft at α = 1), with α given or chosen on held-out data (:func:`choose_wise_ft_alpha`). Both
work in any training loop; :class:`WiSEFTCallback` runs them for the Trainer."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..architectures import ModelLayout, model_layout
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup, keeps_anchors

__all__ = ["WiSEFTCallback", "choose_wise_ft_alpha", "wise_ft_interpolate"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def wise_ft_interpolate(
    model: nn.Module,
    pretrained: Mapping[str, Tensor],
    alpha: float,
    *,
    fine_tuned: Mapping[str, Tensor] | None = None,
) -> list[str]:
    """WiSE-FT (Wortsman et al. 2022, Eq. 1): θ ← (1 − α)·θ₀ + α·θ_ft for the parameters named in ``pretrained``.

    ``pretrained`` maps parameter names to θ₀ (any device; moved per parameter); θ_ft is ``fine_tuned[name]``
    if given, else the parameter's current value. Computed as ``torch.lerp(θ₀, θ_ft, α)``: exactly θ₀ at α = 0,
    exactly θ_ft at α = 1 (the fine-tuned model), within rounding of the formula in between. Parameters not
    named (the new head, re-initialised layers) keep their values.

    Returns:
        The names of the interpolated parameters.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT's mixing coefficient α must be in [0, 1], got {alpha}")
    named = dict(model.named_parameters())
    unknown = sorted(set(pretrained) - set(named))
    if unknown:
        raise ValueError(
            f"WiSE-FT: {len(unknown)} pretrained value(s) match no parameter, e.g. {unknown[:5]}"
        )
    for name, start in pretrained.items():
        param = named[name]
        end = param if fine_tuned is None else fine_tuned[name]
        param.copy_(torch.lerp(start.to(param.device, param.dtype), end.to(param.device, param.dtype), alpha))
    return list(pretrained)


@torch.no_grad()
def choose_wise_ft_alpha(
    model: nn.Module,
    pretrained: Mapping[str, Tensor],
    alphas: Sequence[float],
    score: Callable[[], float],
    *,
    greater_is_better: bool = True,
) -> tuple[float, dict[float, float]]:
    """Choose WiSE-FT's α on held-out data: score each α of the grid, end with the best one's weights.

    ``score()`` evaluates the model as it is (on data held out from training — never on the split you report:
    α chosen there would make that score optimistic). Ties go to the larger α (closer to the fine-tuned model).
    Holds one copy of the interpolated parameters (the fine-tuned values) while the grid is scored.

    Returns:
        The chosen α and every α's score.
    """
    if not alphas:
        raise ValueError("WiSE-FT needs at least one α to choose from")
    named = dict(model.named_parameters())
    fine_tuned = {name: named[name].detach().clone() for name in pretrained}
    scores = {}
    for alpha in alphas:
        wise_ft_interpolate(model, pretrained, alpha, fine_tuned=fine_tuned)
        scores[float(alpha)] = float(score())
    sign = 1.0 if greater_is_better else -1.0

    def rank(alpha: float) -> tuple[float, float]:  # a NaN score ranks last
        value = scores[alpha]
        return (-math.inf if math.isnan(value) else sign * value, alpha)

    best = max(scores, key=rank)
    wise_ft_interpolate(model, pretrained, best, fine_tuned=fine_tuned)
    return best, scores


def _pretrained_names(model: nn.Module, plan: FineTuningPlan, layout: ModelLayout | None = None) -> list[str]:
    """The trainable pretrained parameters: not the new head, not re-initialised, not adapters, not frozen."""
    layout = layout or model_layout(model, plan.layer_map)
    return [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and not layout.is_novel(name) and name not in plan.novel
    ]


PretrainedSource = str | os.PathLike | Mapping[str, Tensor]


class WiSEFTCallback(FineTuningCallback):
    """WiSE-FT (Wortsman et al. 2022, Eq. 1): after training, θ = (1 − α)·θ₀ + α·θ for the pretrained parameters.

    α is given (``alpha``), or chosen from the grid ``alphas`` by the ``metric`` on ``held_out`` — data held out
    from training, never an evaluation split the Trainer reports (refused: α chosen there makes that score
    optimistic); ties go to the larger α. α = 1 is the fine-tuned model, α = 0 the pretrained backbone. The
    parameters interpolated are the trainable pretrained ones: the new head and re-initialised layers have no θ₀
    and keep their fine-tuned values (so α = 0 is the pretrained backbone under the fine-tuned head, not a
    zero-shot model); frozen ones equal θ₀ anyway. After a weight average (:class:`EMACallback`,
    :class:`SWACallback`), θ is the averaged model.

    θ₀ — the clean pretrained weights, also under NoisyTune — comes from AdamWL2SP's anchors when the optimizer
    keeps them (no extra memory), else from ``pretrained``: a checkpoint path or Hub id (the model's class loads
    it on the CPU when training is done: one model's memory for a moment), or a mapping name → tensor; else from
    a CPU copy taken before training (memory: one copy of the pretrained parameters, all run long). Choosing α
    holds one more copy of the pretrained parameters on their device while the grid is scored, and costs one
    prediction pass over ``held_out`` per α. Runs on every process (under ``torchrun`` the scores are gathered
    over all ranks, so every rank chooses the same α). :attr:`alpha_chosen` and :attr:`scores` hold the outcome.
    """

    technique = "wise_ft"  # a copy of θ₀, when one is needed, is taken before NoisyTune's noise
    needs_optimizer_build = False

    def __init__(
        self,
        alpha: float | None = None,
        *,
        alphas: Sequence[float] | None = None,
        held_out: Any = None,
        metric: str | None = None,
        greater_is_better: bool = True,
        pretrained: PretrainedSource | None = None,
    ) -> None:
        if (alpha is None) == (alphas is None):
            raise ValueError(
                "WiSEFTCallback takes a fixed alpha or a grid of alphas to choose from, one of the two."
            )
        grid = [alpha] if alphas is None else [float(a) for a in alphas]
        if not grid or not all(0.0 <= a <= 1.0 for a in grid):
            raise ValueError(f"WiSEFTCallback: α must be in [0, 1], got {grid}.")
        if alphas is not None and (held_out is None or metric is None):
            raise ValueError(
                "WiSEFTCallback(alphas=...) chooses α on data held out from training: give held_out= (a dataset) "
                "and metric= (the metric that decides, e.g. 'accuracy')."
            )
        self.alpha = alpha
        self.alphas = None if alphas is None else grid
        self.held_out = held_out
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.pretrained = pretrained
        self.alpha_chosen: float | None = None
        self.scores: dict[float, float] = {}
        self.source: str | None = None
        self._names: list[str] = []
        self._snapshot: dict[str, Tensor] = {}

    def _arguments(self) -> str:
        return f"{self.alpha}" if self.alphas is None else f"alphas={self.alphas}"

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        evaluated = getattr(plan.trainer, "eval_dataset", None)
        reported = evaluated.values() if isinstance(evaluated, Mapping) else [evaluated]
        if self.held_out is not None and any(self.held_out is dataset for dataset in reported):
            raise ValueError(
                f"{self.describe()}: held_out is an evaluation split the Trainer reports; α chosen on it would make "
                "that score optimistic. Hold out part of the training data instead."
            )
        if keeps_anchors(plan, optimizer):
            self.source = "anchors"
        elif self.pretrained is None:
            self.source = "copy"
        else:
            self.source = "mapping" if isinstance(self.pretrained, Mapping) else "checkpoint"

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        if self.source == "checkpoint" and not callable(getattr(type(model), "from_pretrained", None)):
            raise ValueError(
                f"{self.describe()}: pretrained={self.pretrained!r} is a checkpoint, which {type(model).__name__} "
                "cannot load (no from_pretrained: a module of your own). Leave pretrained unset (a copy of θ₀ is "
                "taken before training), or give a mapping name → tensor."
            )
        self._names = _pretrained_names(model, plan)
        if self.source == "copy":
            named = dict(model.named_parameters())
            self._snapshot = {name: named[name].detach().to("cpu", copy=True) for name in self._names}

    def after_train(self, trainer: Any) -> None:
        model = trainer.model
        pretrained = self._pretrained_values(trainer)
        if self.alphas is None:
            wise_ft_interpolate(model, pretrained, self.alpha)
            self.alpha_chosen, self.scores = self.alpha, {}
        else:
            self.alpha_chosen, self.scores = choose_wise_ft_alpha(
                model,
                pretrained,
                self.alphas,
                lambda: self._score(trainer),
                greater_is_better=self.greater_is_better,
            )
        self._snapshot = {}
        logger.info(
            "%s: α = %g from θ₀ of the %s; held-out scores %s",
            self.describe(),
            self.alpha_chosen,
            self.source,
            self.scores,
        )

    def _score(self, trainer: Any) -> float:
        metrics = trainer.predict(self.held_out, metric_key_prefix="wise_ft").metrics
        key = f"wise_ft_{self.metric}"
        if key not in metrics:
            shown = sorted(name.removeprefix("wise_ft_") for name in metrics)
            raise ValueError(f"{self.describe()}: no metric {self.metric!r} on held_out; it has {shown}")
        return metrics[key]

    @torch.no_grad()
    def _pretrained_values(self, trainer: Any) -> dict[str, Tensor]:
        """θ₀ of every interpolated parameter, from the source :meth:`check` chose."""
        if self.source == "copy":
            return self._snapshot
        if self.source == "anchors":
            optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
            named = dict(trainer.model.named_parameters())
            anchors = {name: optimizer.state.get(named[name], {}).get("anchor") for name in self._names}
            missing = [name for name, anchor in anchors.items() if anchor is None]
            if missing:
                raise RuntimeError(
                    f"{self.describe()}: the optimizer keeps no L2-SP anchor for {missing[:5]}; give "
                    "pretrained= (the pretrained checkpoint) instead."
                )
            return anchors
        if self.source == "mapping":
            missing = [name for name in self._names if name not in self.pretrained]
            if missing:
                raise ValueError(f"{self.describe()}: pretrained= has no value for {missing[:5]}")
            return {name: self.pretrained[name] for name in self._names}
        model = getattr(trainer.model, "module", trainer.model)
        with torch.random.fork_rng(devices=[]):  # the new head it draws takes nothing from the run's RNG
            loaded = type(model).from_pretrained(self.pretrained, config=model.config)
        named = dict(loaded.named_parameters())
        return {name: named[name].detach() for name in self._names}
