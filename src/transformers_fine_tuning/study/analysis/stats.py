"""The statistics of a seed study: describe each recipe's distribution, test each against a baseline recipe.

Instability is a property of a distribution of runs, so a recipe is described by the n final scores of its
seeds — mean, sample standard deviation (ddof = 1, as the papers report it), median, min, max, the number of
failed runs, and a bootstrap 95 % confidence interval of the mean (BCa, scipy's default, with a fixed random
generator so that a summary is reproducible) — and compared with the baseline recipe by three tests, each
answering one question:

* **Brown–Forsythe** (Levene's test centred on the median, ``scipy.stats.levene(center="median")``): do the
  spreads differ? The question stability is about; robust to the skew that failed runs cause.
* **Mann–Whitney U** (two-sided): is one recipe's score typically higher? Rank-based: failed runs are
  outliers that would dominate a t-test.
* **Fisher's exact test** on the 2×2 table (failed / not failed × recipe / baseline): do failures happen at
  different rates? Exact, because failure counts are small.

Spread is judged among the runs that did not fail: a recipe whose runs all fail has no spread at all, and would
otherwise read as the most stable one (std ratio 0, a "significant" Brown–Forsythe test). The std of all runs
is reported beside it, as the papers report it; the std ratio and Brown–Forsythe compare the runs that did not
fail. A recipe with (almost) all runs failed — fewer than two that did not fail, or at least
:data:`DEGENERATE_FAILED_SHARE` of them failed — is *degenerate*: flagged in every table, and never called more
stable.

A location claim takes its direction from the statistic its p-value comes from: the Mann–Whitney U (U − n₁n₂/2,
:func:`~.effects.location_direction`), never from the means, which can point the other way when some runs fail
(16 baseline runs at 0.80 and 4 at 0.30 against 20 at 0.75: the mean says higher, P(recipe > baseline) = 0.2).
Beside the tests, each comparison carries the effects with their intervals (:mod:`.effects`): P(X > Y) and the
Hodges–Lehmann shift, Δmean and ΔE[best of n] by bootstrap (so a best-of-n claim is tested), Almost Stochastic
Order's ε_min; the failure rates' difference with Newcombe's interval (:mod:`.failure_rates`); and the seeds a
decision would need at 80 % power (:mod:`.power`).

Each test's p-values are given raw and Holm-adjusted over the recipes compared with the baseline on a task
(:func:`holm`; Holm 1979, "A Simple Sequentially Rejective Multiple Test Procedure"), which controls the
family-wise error rate of that test's comparisons. Degenerate inputs (fewer than two runs, all values equal)
give ``nan`` where a statistic is undefined, never an exception.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import effects, failure_rates, power
from .expected_max import band_limit, expected_max
from .failure_rates import clopper_pearson

__all__ = [
    "DEGENERATE_FAILED_SHARE",
    "Comparison",
    "Description",
    "bootstrap_mean_ci",
    "compare",
    "describe",
    "holm",
]

NAN = float("nan")
DEGENERATE_FAILED_SHARE = 0.8
"""A recipe with at least this share of its runs failed (or fewer than two runs that did not) is degenerate."""


@dataclass(frozen=True)
class Description:
    """The distribution of one recipe's final scores on one task."""

    n: int
    mean: float
    std: float
    median: float
    minimum: float
    maximum: float
    failed_runs: int
    ci_low: float
    ci_high: float
    std_not_failed: float = NAN
    degenerate: bool = False
    zero_spread: bool = False
    failure_rate_low: float = NAN
    failure_rate_high: float = NAN


@dataclass(frozen=True)
class Comparison:
    """One recipe against the baseline recipe on one task (``nan`` where a test is undefined).

    ``std_ratio`` and Brown–Forsythe compare the runs that did not fail (``nan`` when either side is
    degenerate); the ``*_p_holm`` values are the p-values adjusted over the ``comparisons`` recipes compared on
    the task (set by :func:`holm` in the report; ``nan`` until then). ``direction``: the sign of U − n₁n₂/2
    (+1: the recipe's scores tend to be higher). ``superiority``: P(recipe > baseline) + ½P(tie);
    ``shift``: the Hodges–Lehmann shift; ``expected_max_difference``: ΔE[best of ``expected_max_n``]; each
    with its 95 % interval. ``aso_epsilon``: ε_min of Almost Stochastic Order (< 0.5: the recipe is almost
    stochastically larger). ``failure_difference``: the recipe's failure rate minus the baseline's, Newcombe's
    interval. ``seeds_for_*``: runs per recipe that 80 % power at α = 0.05 would need to tell the observed
    failure rates, or the observed P(recipe > baseline), apart (``None``: nothing to tell apart).
    """

    mean_difference: float
    std_ratio: float
    brown_forsythe_statistic: float
    brown_forsythe_p: float
    mann_whitney_u: float
    mann_whitney_p: float
    fisher_odds_ratio: float
    fisher_p: float
    brown_forsythe_p_holm: float = NAN
    mann_whitney_p_holm: float = NAN
    fisher_p_holm: float = NAN
    comparisons: int = 0
    direction: int = 0
    superiority: float = NAN
    superiority_low: float = NAN
    superiority_high: float = NAN
    shift: float = NAN
    shift_low: float = NAN
    shift_high: float = NAN
    mean_difference_low: float = NAN
    mean_difference_high: float = NAN
    expected_max_n: int = 0
    expected_max_difference: float = NAN
    expected_max_difference_low: float = NAN
    expected_max_difference_high: float = NAN
    aso_epsilon: float = NAN
    failure_difference: float = NAN
    failure_difference_low: float = NAN
    failure_difference_high: float = NAN
    seeds_for_failure_rates: int | None = None
    seeds_for_shift: int | None = None


def _values(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("values must be one-dimensional")
    return array


def bootstrap_mean_ci(
    values: Sequence[float],
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> tuple[float, float]:
    """A bootstrap confidence interval of the mean (BCa, ``scipy.stats.bootstrap``), reproducible by ``seed``.

    Fewer than two values give ``(nan, nan)``; identical values give the value itself as both bounds (BCa is
    undefined there, and no resample could differ).
    """
    array = _values(values)
    if array.size < 2:
        return NAN, NAN
    if np.ptp(array) == 0:
        return float(array[0]), float(array[0])
    generator = np.random.default_rng(seed)
    # scipy >= 1.15 names the generator `rng`; older releases `random_state`.
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # BCa warns on near-degenerate resamples; the interval is still reported
        result = stats.bootstrap(
            (array,),
            np.mean,
            confidence_level=confidence_level,
            n_resamples=n_resamples,
            method="BCa",
            **{key: generator},
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def describe(
    values: Sequence[float],
    failed: Sequence[bool],
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Description:
    """Describe the final scores ``values`` of a recipe's runs; ``failed[i]`` says whether run ``i`` failed.

    Raises:
        ValueError: ``values`` and ``failed`` differ in length.
    """
    array = _values(values)
    if len(failed) != array.size:
        raise ValueError(f"{array.size} values but {len(failed)} failed flags")
    if array.size == 0:
        return Description(0, NAN, NAN, NAN, NAN, NAN, 0, NAN, NAN)
    low, high = bootstrap_mean_ci(
        array, confidence_level=confidence_level, n_resamples=n_resamples, seed=seed
    )
    failed_runs = int(sum(bool(flag) for flag in failed))
    not_failed = _not_failed(array, failed)
    rate = clopper_pearson(failed_runs, int(array.size))
    return Description(
        n=int(array.size),
        mean=float(np.mean(array)),
        std=_std(array),
        median=float(np.median(array)),
        minimum=float(np.min(array)),
        maximum=float(np.max(array)),
        failed_runs=failed_runs,
        ci_low=low,
        ci_high=high,
        std_not_failed=_std(not_failed),
        degenerate=_degenerate(not_failed.size, failed_runs, int(array.size)),
        zero_spread=array.size > 1 and float(np.ptp(array)) == 0.0,
        failure_rate_low=rate.low,
        failure_rate_high=rate.high,
    )


def _degenerate(not_failed: int, failed: int, n: int) -> bool:
    """Fewer than two runs that did not fail, or at least :data:`DEGENERATE_FAILED_SHARE` of them failed."""
    return not_failed < 2 or failed >= DEGENERATE_FAILED_SHARE * n


def _std(array: np.ndarray) -> float:
    return float(np.std(array, ddof=1)) if array.size > 1 else NAN


def _not_failed(array: np.ndarray, failed: Sequence[bool]) -> np.ndarray:
    return array[~np.asarray([bool(flag) for flag in failed], dtype=bool)] if array.size else array


def _quietly(test, *args, **kwargs) -> tuple[float, float]:
    """Run a scipy test, returning ``(nan, nan)`` where it is undefined instead of warning or raising."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = test(*args, **kwargs)
        except ValueError:
            return NAN, NAN
    return float(result[0]), float(result[1])


def compare(
    values: Sequence[float],
    failed: Sequence[bool],
    baseline_values: Sequence[float],
    baseline_failed: Sequence[bool],
) -> Comparison:
    """Test a recipe's runs against the baseline recipe's runs (see the module docstring for the tests)."""
    x, y = _values(values), _values(baseline_values)
    spread_x, spread_y = _not_failed(x, failed), _not_failed(y, baseline_failed)
    failed_x, failed_y = int(sum(map(bool, failed))), int(sum(map(bool, baseline_failed)))
    # a degenerate side has no spread worth comparing; two values lie at the same distance from their median:
    # no within-group spread, no test (p would be 0)
    degenerate = _degenerate(spread_x.size, failed_x, x.size) or _degenerate(spread_y.size, failed_y, y.size)
    enough = not degenerate and spread_x.size >= 3 and spread_y.size >= 3
    bf = _quietly(stats.levene, spread_x, spread_y, center="median") if enough else (NAN, NAN)
    if not (x.size and y.size):
        return Comparison(NAN, NAN, *bf, NAN, NAN, NAN, NAN)
    mw = _quietly(stats.mannwhitneyu, x, y, alternative="two-sided")
    table = [[failed_x, x.size - failed_x], [failed_y, y.size - failed_y]]
    fisher = _quietly(stats.fisher_exact, table)
    std_x, std_y = _std(spread_x), _std(spread_y)
    return Comparison(
        mean_difference=float(np.mean(x) - np.mean(y)),
        std_ratio=std_x / std_y if not degenerate and std_y and not math.isnan(std_y) else NAN,
        brown_forsythe_statistic=bf[0],
        brown_forsythe_p=bf[1],
        mann_whitney_u=mw[0],
        mann_whitney_p=mw[1],
        fisher_odds_ratio=fisher[0],
        fisher_p=fisher[1],
        **_effects(x, y, failed_x, failed_y),
    )


def _effects(x: np.ndarray, y: np.ndarray, failed_x: int, failed_y: int) -> dict[str, float | int | None]:
    """The effect sizes with their intervals and the seeds a decision needs (the fields after ``comparisons``)."""
    superiority = effects.superiority(x, y)
    shift = effects.hodges_lehmann(x, y)
    mean = effects.bootstrap_difference(x, y, np.mean)
    n = band_limit(int(min(x.size, y.size)))  # where the bootstrap covers what it says (.expected_max)
    best = (
        effects.bootstrap_difference(x, y, lambda v: expected_max(v, n))
        if n
        else effects.Interval(NAN, NAN, NAN)
    )
    rates = failure_rates.newcombe_difference(failed_x, int(x.size), failed_y, int(y.size))
    return {
        "direction": effects.location_direction(x, y),
        "superiority": superiority.estimate,
        "superiority_low": superiority.low,
        "superiority_high": superiority.high,
        "shift": shift.estimate,
        "shift_low": shift.low,
        "shift_high": shift.high,
        "mean_difference_low": mean.low,
        "mean_difference_high": mean.high,
        "expected_max_n": n,
        "expected_max_difference": best.estimate,
        "expected_max_difference_low": best.low,
        "expected_max_difference_high": best.high,
        "aso_epsilon": effects.almost_stochastic_order(x, y) if min(x.size, y.size) >= 2 else NAN,
        "failure_difference": rates.estimate,
        "failure_difference_low": rates.low,
        "failure_difference_high": rates.high,
        "seeds_for_failure_rates": power.seeds_for_failure_rates(failed_x / x.size, failed_y / y.size),
        "seeds_for_shift": power.seeds_for_shift(superiority.estimate)
        if math.isfinite(superiority.estimate)
        else None,
    }


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the given order: the k-th smallest of the m defined p-values times
    (m − k + 1), made non-decreasing, capped at 1. ``nan`` (an undefined test) stays ``nan`` and is not counted
    in m."""
    p = np.asarray(p_values, dtype=np.float64)
    defined = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(p.shape, NAN)
    order = defined[np.argsort(p[defined], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return [float(value) for value in adjusted]
