"""The noise floor of a seed study: how much spread a finite dev set alone puts into a run's score.

A dev set of n examples measures a run's quality with sampling error: even one fixed model would score
differently on another dev set of the same size drawn from the same distribution. That error — the standard
deviation of the metric over dev sets resampled with replacement from the one we have (the bootstrap over
examples; Efron & Tibshirani 1993; Dror et al. 2018, "The Hitchhiker's Guide to Testing Statistical
Significance in NLP") — is the *noise floor*: seed-to-seed differences no larger than it say as much about the
dev set as about the seeds (on a small dev set it is not small: 2.8 accuracy points for 70 % on RTE's 277
examples, 1.8 for 85 % on MRPC's 408).

* :func:`bootstrap_metric_std` — the floor of one run from its predictions and the labels, any metric.
* :func:`accuracy_std` — the floor of accuracy from the score and the dev set's size alone: resampling a 0/1
  correctness vector with replacement makes the resampled accuracy binomial(n, a)/n, so its standard
  deviation is exactly √(a(1 − a)/n).
* :func:`compare_to_floor` — the seed-to-seed standard deviation against the floor: their ratio, and the
  one-sided chi-square test of "the runs' variance exceeds the floor's": (r − 1)·s²/σ² ~ χ²_{r−1} under
  H0: variance = σ², for r runs with sample standard deviation s. The test treats the floor σ as *known*
  (it is estimated from thousands of examples, the seed std from a handful of runs) and assumes roughly
  normal scores; failed runs inflate s, so a significant result there says "failures", not "seeds".

Degenerate inputs give ``nan`` (never an exception).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["SIGNIFICANCE", "NoiseFloor", "accuracy_std", "bootstrap_metric_std", "compare_to_floor"]

NAN = float("nan")
SIGNIFICANCE = 0.05
"""The seed spread *exceeds* the floor when the chi-square test's p-value is below this."""


def bootstrap_metric_std(
    predictions: Sequence[Any],
    labels: Sequence[Any],
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> float:
    """The bootstrap standard deviation (ddof = 1) of ``metric(predictions, labels)`` over the dev examples
    resampled with replacement (the same indices for both), a fixed generator: reproducible. ``nan`` with
    fewer than two examples.

    Raises:
        ValueError: predictions and labels differ in length.
    """
    p, y = np.asarray(predictions), np.asarray(labels)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions but {len(y)} labels")
    if len(p) < 2:
        return NAN
    generator = np.random.default_rng(seed)
    indices = generator.integers(0, len(p), size=(n_resamples, len(p)))
    values = np.array([float(metric(p[i], y[i])) for i in indices])
    return float(np.std(values, ddof=1))


def accuracy_std(accuracy: float, n_examples: int) -> float:
    """√(a(1 − a)/n): the bootstrap standard deviation of accuracy ``a`` on ``n_examples`` dev examples
    (module docstring). ``nan`` for no examples or an accuracy outside [0, 1]."""
    if n_examples < 1 or not 0 <= accuracy <= 1:
        return NAN
    return math.sqrt(accuracy * (1 - accuracy) / n_examples)


@dataclass(frozen=True)
class NoiseFloor:
    """The seed-to-seed standard deviation against the dev set's own noise.

    ``ratio``: seed_std / floor_std (``inf`` for a zero floor under a positive spread). ``p_value``: the
    one-sided chi-square test of "the runs' variance exceeds the floor's" (module docstring; ``nan`` where
    undefined); ``exceeds``: p_value < :data:`SIGNIFICANCE`.
    """

    seed_std: float
    floor_std: float
    ratio: float
    p_value: float
    exceeds: bool


def compare_to_floor(seed_std: float, floor_std: float, n_runs: int) -> NoiseFloor:
    """Compare the sample standard deviation ``seed_std`` of ``n_runs`` runs' scores with the noise floor
    ``floor_std``: p = P(χ²_{n−1} >= (n − 1)·s²/σ²), the floor treated as known.

    ``nan`` ratio and p-value for fewer than two runs, a ``nan`` or negative input, or both deviations zero;
    a zero floor under a positive spread gives ratio ``inf`` and p = 0.
    """
    undefined = NoiseFloor(seed_std, floor_std, NAN, NAN, False)
    if n_runs < 2 or not (seed_std >= 0 and floor_std >= 0):  # also catches nan
        return undefined
    if floor_std == 0:
        return NoiseFloor(seed_std, floor_std, math.inf, 0.0, True) if seed_std > 0 else undefined
    statistic = (n_runs - 1) * seed_std**2 / floor_std**2
    p_value = float(stats.chi2.sf(statistic, n_runs - 1))
    return NoiseFloor(seed_std, floor_std, seed_std / floor_std, p_value, p_value < SIGNIFICANCE)
