"""Expected validation performance: the expected best dev score of n runs of a recipe, n = 1 … N.

A practitioner who fine-tunes with restarts keeps the best of n runs, so the question a seed study should
answer is "how good is the best of n runs, and how many runs does a recipe need" — which a mean and a standard
deviation answer badly when some runs fail (Dodge et al. 2019, "Show Your Work: Improved Reporting of
Experimental Results", Sec. 3). From N observed scores v₍₁₎ ≤ … ≤ v₍N₎ there are two estimators of
E[max of n runs]:

* **unbiased** (the default; Dodge et al. 2021, "Expected Validation Performance and Estimation of a Random
  Variable's Maximum", the U-statistic): the mean of the maximum over all C(N, n) subsets of n of the runs,
  Σᵢ v₍ᵢ₎ · C(i−1, n−1) / C(N, n) — unbiased for runs drawn independently, defined for n ≤ N; at n = N it is
  the observed best.
* **with replacement** (Dodge et al. 2019, Eq. 1): the expected maximum of n draws from the empirical
  distribution, Σᵢ v₍ᵢ₎ · [(i/N)ⁿ − ((i−1)/N)ⁿ]; defined for every n but biased low (at n = N it is below the
  observed best).

Bands come from the bootstrap: the N runs resampled with replacement, the estimator recomputed for every n; the
2.5th and 97.5th percentiles of each n (a fixed random generator, so a summary is reproducible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np

__all__ = ["ESTIMATORS", "ExpectedMax", "expected_max", "expected_max_curve", "runs_to_reach"]

ESTIMATORS = ("unbiased", "with_replacement")


def _weights(total: int, counts: Sequence[int], estimator: str) -> np.ndarray:
    """Row k: the weight of each sorted score v₍₁₎ … v₍N₎ in the estimate for ``counts[k]`` runs."""
    if estimator == "unbiased":
        if max(counts) > total:
            raise ValueError(f"the unbiased estimator needs n <= N = {total} runs, not n = {max(counts)}")
        return np.array(
            [[comb(i - 1, n - 1) / comb(total, n) for i in range(1, total + 1)] for n in counts],
            dtype=np.float64,
        )
    if estimator == "with_replacement":
        ranks = np.arange(total + 1, dtype=np.float64) / total
        return np.array([np.diff(ranks**n) for n in counts])
    raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")


def expected_max(values: Sequence[float], n: int, *, estimator: str = "unbiased") -> float:
    """E[max of ``n`` runs] estimated from the observed scores ``values`` (see the module docstring).

    Raises:
        ValueError: no values, ``n`` < 1, ``n`` > N for the unbiased estimator, or an unknown estimator.
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0 or n < 1:
        raise ValueError(f"expected_max needs at least one value and n >= 1 (got {v.size} values, n = {n})")
    return float(_weights(v.size, [n], estimator)[0] @ v)


@dataclass(frozen=True)
class ExpectedMax:
    """E[max of n runs] for n = 1 … N, with bootstrap bands (``low``/``high``; ``nan`` for a single run)."""

    n: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    estimator: str

    def at(self, n: int) -> float:
        """The estimate for ``n`` runs."""
        return self.mean[self.n.index(n)]


def expected_max_curve(
    values: Sequence[float],
    *,
    estimator: str = "unbiased",
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> ExpectedMax:
    """The expected best of n runs for every n from 1 to the number of runs, with bootstrap bands."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    counts = tuple(range(1, v.size + 1))
    if not counts:
        return ExpectedMax((), (), (), (), estimator)
    weights = _weights(v.size, counts, estimator)
    mean = tuple(map(float, weights @ v))
    if v.size < 2:
        return ExpectedMax(counts, mean, (float("nan"),), (float("nan"),), estimator)
    generator = np.random.default_rng(seed)
    resamples = np.sort(generator.choice(v, size=(n_resamples, v.size), replace=True), axis=1)
    curves = resamples @ weights.T  # one row per resample, one column per n
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return ExpectedMax(counts, mean, tuple(map(float, low)), tuple(map(float, high)), estimator)


def runs_to_reach(curve: ExpectedMax, target: float) -> int | None:
    """The smallest n whose expected best reaches ``target``; ``None`` when no n up to N does."""
    return next((n for n, value in zip(curve.n, curve.mean, strict=True) if value >= target), None)
