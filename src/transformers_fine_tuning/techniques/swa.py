"""Stochastic weight averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
Generalization", Alg. 1: w_SWA ← (w_SWA·n_models + w)/(n_models + 1)): the uniform average of the iterates,
``w_n = 1/n`` (:func:`swa_weight`). For any training loop: :class:`~.weight_averaging.WeightAverage` with
:func:`swa_weight`; for the Trainer: :class:`SWACallback`.
"""

from __future__ import annotations

from .base import steps_of
from .weight_averaging import WeightAveragingCallback

__all__ = ["SWACallback", "swa_weight"]


def swa_weight(num_averaged: int) -> float:
    """The weight of the ``num_averaged``-th iterate in a uniform average (SWA): 1/n."""
    if num_averaged < 1:
        raise ValueError(f"the iterates are counted from 1, got {num_averaged}")
    return 1.0 / num_averaged


class SWACallback(WeightAveragingCallback):
    """Stochastic weight averaging (Izmailov et al. 2018, Alg. 1): the uniform average of the iterates after the
    first ``start`` optimizer steps (below 1: a share of all steps, as ``--warmup_steps``; 0.75 — the last
    quarter — is the paper's choice), one every ``every`` steps. Izmailov et al. switch to a constant or cyclical
    learning rate for the averaged phase; here the run keeps its own schedule (``--lr_scheduler_type
    constant_with_warmup`` gives the paper's constant form). See :class:`WeightAveragingCallback`.
    """

    technique = "swa"

    def __init__(self, start: float = 0.75, *, every: int = 1, use_average: bool = True) -> None:
        if not start >= 0.0 or every < 1:
            raise ValueError(f"SWACallback: start must be >= 0 and every >= 1, got {start}, {every}.")
        super().__init__(use_average=use_average)
        self.start = start
        self.every = every
        self.start_step = 0

    def _arguments(self) -> str:
        return (
            f"{self.start}"
            + (f", every={self.every}" if self.every != 1 else "")
            + ("" if self.use_average else ", use_average=False")
        )

    def _begin(self, max_steps: int) -> None:
        self.start_step = steps_of(self.start, max_steps)
        if self.start_step + self.every > max_steps:
            raise ValueError(
                f"{self.describe()}: averaging from step {self.start_step + self.every} of a {max_steps}-step run "
                "averages nothing. Start earlier (a share below 1, e.g. 0.75), or train longer."
            )

    def weight(self, step: int, num_averaged: int) -> float | None:
        if step <= self.start_step or (step - self.start_step) % self.every:
            return None
        return swa_weight(num_averaged)

    def averaged_by(self, step: int) -> int:
        return max(0, (step - self.start_step) // self.every)
