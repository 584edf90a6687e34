"""Churn: how often two runs of the same recipe disagree on the same dev examples.

Two seeds can end at the same accuracy while classifying many examples differently; that prediction churn is
instability a score's spread does not show (it is what one notices when a retrained model changes its answers;
Milani Fard et al. 2016, "Launch and Iterate: Reducing Prediction Churn"). For classification, the churn of two
runs is the share of examples on which their predicted classes differ; for a regression task (STS-B), the mean
absolute difference of their predicted scores. A recipe's churn is the mean over all pairs of its runs, with a
bootstrap interval over the runs (resampled with replacement; pairs of a run with itself are left out, as they
are of the estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Churn", "pairwise_churn"]


@dataclass(frozen=True)
class Churn:
    """Mean pairwise disagreement of a recipe's runs, its bootstrap interval, and how many runs it rests on."""

    mean: float
    low: float
    high: float
    runs: int


def _pair_matrix(predictions: np.ndarray, regression: bool) -> np.ndarray:
    """Disagreement of every pair of runs (rows of ``predictions``)."""
    if regression:
        return np.abs(predictions[:, None, :] - predictions[None, :, :]).mean(axis=2)
    return (predictions[:, None, :] != predictions[None, :, :]).mean(axis=2)


def pairwise_churn(
    predictions: Sequence[Sequence[float]],
    *,
    regression: bool = False,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Churn:
    """The churn of the runs whose dev predictions are the rows of ``predictions`` (same examples, same order).

    Raises:
        ValueError: the runs predicted different numbers of examples.
    """
    rows = [np.asarray(row, dtype=np.float64) for row in predictions]
    if len({row.size for row in rows}) > 1:
        raise ValueError(
            f"runs predicted different numbers of examples: {sorted({row.size for row in rows})}"
        )
    nan = float("nan")
    if len(rows) < 2:
        return Churn(nan, nan, nan, len(rows))
    matrix = _pair_matrix(np.stack(rows), regression)
    runs = len(rows)
    upper = np.triu_indices(runs, k=1)
    mean = float(matrix[upper].mean())
    generator = np.random.default_rng(seed)
    estimates = []
    for _ in range(n_resamples):
        chosen = generator.integers(0, runs, size=runs)
        pairs = matrix[np.ix_(chosen, chosen)]
        distinct = chosen[:, None] != chosen[None, :]  # a run paired with itself says nothing
        if distinct.any():
            estimates.append(pairs[distinct].mean())
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return Churn(mean, float(low), float(high), runs)
