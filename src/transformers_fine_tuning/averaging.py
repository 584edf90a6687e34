"""Averages in weight space: of the training iterates (EMA, SWA), and of the fine-tuned with the pretrained
weights (WiSE-FT). Functions and a small class on tensors, usable in any training loop; the callbacks
(:class:`~transformers_fine_tuning.EMACallback`, :class:`~transformers_fine_tuning.SWACallback`,
:class:`~transformers_fine_tuning.WiSEFTCallback`) run them for the Trainer.

* **Weight averaging** keeps, beside the parameters θ_t of step t, a running average ē_t updated after every
  averaged optimizer step as ``ē ← lerp(ē, θ_t, w_n)`` (one ``torch._foreach_lerp_`` over all parameters), where
  n counts the iterates averaged so far:

  - uniform (SWA, Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better Generalization",
    Alg. 1: w_SWA ← (w_SWA·n_models + w)/(n_models + 1)): ``w_n = 1/n`` (:func:`swa_weight`);
  - exponential (Polyak averaging in its exponential form; Kingma & Ba 2015, "Adam", Sec. 7.2, "temporal
    averaging" θ̄_t = β·θ̄_{t−1} + (1 − β)·θ_t with θ̄_0 = 0, bias-corrected θ̂_t = θ̄_t/(1 − β^t)):
    ``w_n = (1 − β)/(1 − β^n)`` (:func:`ema_weight`), which gives that bias-corrected average exactly,
    ē_n = Σᵢ (1 − β)·β^(n−i)·θᵢ / (1 − β^n) — a weighted average of the iterates only, so a short run is not
    dominated by its starting point as an average started at θ₀ would be.

  The average is of the *trainable parameters* only, in their own dtype, on their own device: its memory is
  one copy of them. Buffers (e.g. Mixout's ``mixout_target``, the pretrained value it mixes toward) and frozen
  parameters are not averaged — they do not change during training. :meth:`WeightAverage.swapped` puts the
  average into the parameters for an evaluation and takes it out again, bit for bit.

* **WiSE-FT** (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", Eq. 1): after fine-tuning,
  θ_α = (1 − α)·θ₀ + α·θ_ft for the pretrained parameters (:func:`wise_ft_interpolate`, as ``torch.lerp``:
  exactly θ₀ at α = 0 and exactly θ_ft at α = 1), with α given or chosen on held-out data
  (:func:`choose_wise_ft_alpha`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "WeightAverage",
    "choose_wise_ft_alpha",
    "ema_decay_from_half_life",
    "ema_weight",
    "swa_weight",
    "wise_ft_interpolate",
]


def swa_weight(num_averaged: int) -> float:
    """The weight of the ``num_averaged``-th iterate in a uniform average (SWA): 1/n."""
    if num_averaged < 1:
        raise ValueError(f"the iterates are counted from 1, got {num_averaged}")
    return 1.0 / num_averaged


def ema_weight(num_averaged: int, decay: float) -> float:
    """The weight of the ``num_averaged``-th iterate in a bias-corrected exponential average: (1 − β)/(1 − βⁿ).

    1 for the first iterate (the average starts at it); tends to 1 − β.
    """
    if num_averaged < 1:
        raise ValueError(f"the iterates are counted from 1, got {num_averaged}")
    if not 0.0 < decay < 1.0:
        raise ValueError(f"the EMA decay must be in (0, 1), got {decay}")
    return (1.0 - decay) / (1.0 - decay**num_averaged)


def ema_decay_from_half_life(half_life_steps: float) -> float:
    """The decay β whose weights halve every ``half_life_steps`` steps: β = 0.5^(1/h)."""
    if not half_life_steps > 0.0:
        raise ValueError(f"the EMA half-life must be > 0 steps, got {half_life_steps}")
    return math.pow(0.5, 1.0 / half_life_steps)


class WeightAverage:
    """A running average of some parameters over training iterates (EMA or SWA: the caller gives the weight).

    ::

        average = WeightAverage((n, p) for n, p in model.named_parameters() if p.requires_grad)
        for step, batch in enumerate(loader, 1):
            ...; optimizer.step()
            average.update(ema_weight(average.num_averaged + 1, 0.999))  # or swa_weight(...)
        with average.swapped():
            evaluate(model)  # with the averaged weights; afterwards the model is as it was, bit for bit
        average.copy_to_params()  # end with the average

    The averages are tensors of the parameters' dtype on the parameters' devices, created from the first
    iterate (weight 1); :meth:`state_dict` / :meth:`load_state_dict` key them by parameter name, for checkpoints.
    """

    def __init__(self, named_parameters: Iterable[tuple[str, Tensor]]) -> None:
        named = list(named_parameters)
        self.names = [name for name, _ in named]
        self.params = [param for _, param in named]
        self.averages: list[Tensor] = []
        self.num_averaged = 0

    @torch.no_grad()
    def update(self, weight: float) -> None:
        """Average in the parameters' current values with ``weight``: ``ē ← lerp(ē, θ, weight)``; the first
        update copies them (whatever the weight)."""
        if not self.averages:
            self.averages = [param.detach().clone() for param in self.params]
        elif self.params:
            torch._foreach_lerp_(self.averages, [param.detach() for param in self.params], weight)
        self.num_averaged += 1

    @torch.no_grad()
    def _swap(self) -> None:
        for param, average in zip(self.params, self.averages, strict=True):
            current = param.detach().clone()
            param.copy_(average)
            average.copy_(current)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The averaged weights in the parameters inside the block, the trained ones again after it (exactly:
        a swap, one parameter's temporary copy at a time). Nothing happens before the first update."""
        if not self.averages:
            yield
            return
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Put the average into the parameters for good (the end of training)."""
        for param, average in zip(self.params, self.averages, strict=True):
            param.copy_(average)

    def state_dict(self) -> dict[str, Any]:
        """``{"num_averaged": n, "averages": {name: tensor}}`` (the tensors themselves, not copies)."""
        return {
            "num_averaged": self.num_averaged,
            "averages": dict(zip(self.names, self.averages, strict=True)),
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s content into tensors of the parameters' dtype and device.

        Raises:
            ValueError: the saved averages are of other parameters (names or shapes).
        """
        saved = state["averages"]
        if sorted(saved) != sorted(self.names):
            missing, unknown = sorted(set(self.names) - set(saved)), sorted(set(saved) - set(self.names))
            raise ValueError(
                f"the saved weight average is of other parameters: missing {missing[:5]}, unknown {unknown[:5]}"
            )
        averages = []
        for name, param in zip(self.names, self.params, strict=True):
            if saved[name].shape != param.shape:
                raise ValueError(
                    f"the saved average of {name} has shape {tuple(saved[name].shape)}, not {tuple(param.shape)}"
                )
            averages.append(saved[name].to(param.device, param.dtype, copy=True))
        self.averages = averages
        self.num_averaged = int(state["num_averaged"])


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
