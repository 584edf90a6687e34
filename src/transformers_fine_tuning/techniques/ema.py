"""An exponential moving average of the weights: Polyak averaging in its exponential form, bias-corrected (Kingma &
Ba 2015, "Adam", Sec. 7.2, "temporal averaging" θ̄_t = β·θ̄_{t−1} + (1 − β)·θ_t with θ̄_0 = 0, θ̂_t = θ̄_t/(1 − β^t)).

Averaging the iterates with ``w_n = (1 − β)/(1 − β^n)`` (:func:`ema_weight`) gives that bias-corrected average
exactly, ē_n = Σᵢ (1 − β)·β^(n−i)·θᵢ / (1 − β^n) — a weighted average of the iterates only, so a short run is not
dominated by its starting point as an average started at θ₀ would be. For any training loop:
:class:`~.weight_averaging.WeightAverage` with :func:`ema_weight`; for the Trainer: :class:`EMACallback`.
"""

from __future__ import annotations

import math

from .weight_averaging import WeightAveragingCallback

__all__ = ["EMACallback", "ema_decay_from_half_life", "ema_weight"]


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


class EMACallback(WeightAveragingCallback):
    """An exponential moving average of the weights (Polyak averaging, exponential form; bias-corrected as in
    Kingma & Ba 2015, Sec. 7.2): ē_n = Σᵢ (1 − β)·β^(n−i)·θᵢ / (1 − β^n) over the iterates θ₁ … θ_n of every
    optimizer step. Give the decay β, or the ``half_life`` h (β = 0.5^(1/h): an iterate's weight halves every h
    steps; below 1, a share of all steps, as ``--warmup_steps``). See :class:`WeightAveragingCallback`.
    """

    technique = "ema"

    def __init__(
        self, decay: float | None = None, *, half_life: float | None = None, use_average: bool = True
    ) -> None:
        if (decay is None) == (half_life is None):
            raise ValueError("EMACallback takes the decay or the half_life, one of the two.")
        if decay is not None and not 0.0 < decay < 1.0:
            raise ValueError(f"EMACallback: decay must be in (0, 1), got {decay}.")
        if half_life is not None and not half_life > 0.0:
            raise ValueError(f"EMACallback: half_life must be > 0, got {half_life}.")
        super().__init__(use_average=use_average)
        self.decay = decay
        self.half_life = half_life
        self.decay_used = decay

    def _arguments(self) -> str:
        shown = f"{self.decay}" if self.decay is not None else f"half_life={self.half_life}"
        return shown + ("" if self.use_average else ", use_average=False")

    def _begin(self, max_steps: int) -> None:
        if self.decay is None:
            steps = self.half_life if self.half_life >= 1 else self.half_life * max_steps
            self.decay_used = ema_decay_from_half_life(steps)

    def weight(self, step: int, num_averaged: int) -> float | None:
        return ema_weight(num_averaged, self.decay_used)

    def averaged_by(self, step: int) -> int:
        return step
