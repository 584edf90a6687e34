"""The best evaluation of a run beside its last: which step, chosen on which split.

Papers and users disagree on reporting the model at the end of training or the best one seen on dev. The best on
dev, reported on dev, is optimistic: the split chose it. A careful report gives both, the best chosen on a split
that is not the one reported (a held-out part of the training data, as WiSE-FT's α is chosen). :func:`best_score` finds it in a run's evaluations; ``results.json`` keeps it as ``best`` and a seed
study summarises either score (``tft-study summary --score best``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import Evaluation

__all__ = ["BEST_HELD_OUT", "BestScore", "best_score"]

BEST_HELD_OUT = "best_held_out"
"""The split of training examples set aside to choose the best evaluation (``--best_held_out``): never trained
on, evaluated at every evaluation."""


@dataclass(frozen=True)
class BestScore:
    """The evaluation whose ``selected_on`` score of the main metric was the highest (the first such step).

    Attributes:
        step: the training step of that evaluation.
        split: the reported split (the main metric's).
        value: the main metric on ``split`` at that step.
        selected_on: the split that chose it — ``split`` itself (optimistic) or a held-out one.
        selection_value: the main metric on ``selected_on`` at that step.
    """

    step: int
    split: str
    value: float
    selected_on: str
    selection_value: float

    @property
    def optimistic(self) -> bool:
        """Whether the reported split chose the step (its score is then biased upward)."""
        return self.selected_on == self.split


def best_score(
    evaluations: Iterable[Evaluation], metric: str, split: str, *, select_on: str | None = None
) -> BestScore | None:
    """The best evaluation of ``metric`` (higher is better, as every main metric here), chosen on ``select_on``
    (default ``split`` itself) and reported on ``split``; ``None`` when no step has finite values on both."""
    chooser = select_on or split
    by_step: dict[int, dict[str, float]] = {}
    for evaluation in evaluations:
        value = evaluation.metrics.get(metric)
        if evaluation.split in (split, chooser) and value is not None and math.isfinite(float(value)):
            by_step.setdefault(evaluation.step, {})[evaluation.split] = float(value)
    candidates = [
        (step, values) for step, values in sorted(by_step.items()) if {split, chooser} <= set(values)
    ]
    if not candidates:
        return None
    step, values = max(candidates, key=lambda item: (item[1][chooser], -item[0]))
    return BestScore(step, split, values[split], chooser, values[chooser])
