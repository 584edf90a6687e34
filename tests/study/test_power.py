"""Seeds a decision needs and the sequential stopping rule, on known inputs: Fleiss' formula by hand and against
statsmodels' arcsine power, Noether's formula by hand, the power they promise by exact enumeration and
simulation, and the spending boundaries' type-I error under the null by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transformers_fine_tuning.study.analysis.power import (
    seeds_for_failure_rates,
    seeds_for_shift,
    spending_boundaries,
)

Z_ALPHA, Z_POWER = 1.959964, 0.841621  # z_{0.975}, z_{0.8}


def test_seeds_for_failure_rates_by_hand():
    # 0.6 vs 0.8: n' = [1.96·√(2·0.7·0.3) + 0.8416·√(0.24 + 0.16)]² / 0.2² = 81.23;
    # n = n'/4·[1 + √(1 + 4/(n'·0.2))]² = 90.95 -> 91 a recipe
    uncorrected = (Z_ALPHA * math.sqrt(2 * 0.7 * 0.3) + Z_POWER * math.sqrt(0.24 + 0.16)) ** 2 / 0.04
    assert uncorrected == pytest.approx(81.23, abs=0.01)
    assert seeds_for_failure_rates(0.6, 0.8) == 91 == seeds_for_failure_rates(0.8, 0.6)
    # none failed vs all failed: n' = 1.96² · 0.5 = 1.92, n = 0.48·(1 + √(1 + 4/1.92))² = 3.64 -> 4
    assert seeds_for_failure_rates(0.0, 1.0) == 4
    assert seeds_for_failure_rates(0.2, 0.2) is None and seeds_for_failure_rates(math.nan, 0.2) is None
    # more power, a stricter alpha, a smaller difference: more runs
    assert (
        seeds_for_failure_rates(0.6, 0.8, power=0.9) > 91
        and seeds_for_failure_rates(0.6, 0.8, alpha=0.01) > 91
    )
    assert seeds_for_failure_rates(0.6, 0.75) > 91
    with pytest.raises(ValueError):
        seeds_for_failure_rates(0.2, 1.2)


@pytest.mark.parametrize(("p1", "p2"), [(0.6, 0.8), (0.3, 0.5), (0.4, 0.6)])
def test_seeds_for_failure_rates_against_statsmodels_arcsine_power(p1, p2):
    # Cohen's h (arcsine) power is the uncorrected n'; the continuity correction adds about 2/|p1 − p2|
    power = pytest.importorskip("statsmodels.stats.power")
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    h = abs(proportion.proportion_effectsize(p1, p2))
    arcsine = power.NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
    assert seeds_for_failure_rates(p1, p2) == pytest.approx(arcsine + 2 / abs(p1 - p2), abs=2)


def test_seeds_for_failure_rates_deliver_the_power_of_fishers_test():
    # exact power of Fisher's two-sided test at the returned n, summed over every pair of outcomes
    p1, p2 = 0.1, 0.5
    n = seeds_for_failure_rates(p1, p2)
    assert n == 25
    pmf1, pmf2 = stats.binom.pmf(np.arange(n + 1), n, p1), stats.binom.pmf(np.arange(n + 1), n, p2)
    exact_power = sum(
        pmf1[i] * pmf2[j]
        for i in range(n + 1)
        for j in range(n + 1)
        if pmf1[i] * pmf2[j] > 1e-9 and stats.fisher_exact([[i, n - i], [j, n - j]])[1] <= 0.05
    )
    assert 0.78 <= exact_power <= 0.9


def test_seeds_for_shift_is_noethers_formula():
    # p = 0.75: N = (1.96 + 0.8416)² / (3 · 0.25²) = 41.86 in all, 20.9 -> 21 a recipe
    total = (Z_ALPHA + Z_POWER) ** 2 / (3 * 0.25**2)
    assert total == pytest.approx(41.86, abs=0.01)
    assert seeds_for_shift(0.75) == 21 == seeds_for_shift(0.25)
    # complete separation: N = 7.849 / 0.75 = 10.47 -> 6 a recipe
    assert seeds_for_shift(1.0) == 6
    assert seeds_for_shift(0.6) == math.ceil((Z_ALPHA + Z_POWER) ** 2 / (3 * 0.01) / 2)
    assert seeds_for_shift(0.5) is None and seeds_for_shift(math.nan) is None
    with pytest.raises(ValueError):
        seeds_for_shift(1.5)


def test_seeds_for_shift_delivers_its_power():
    # normal scores shifted so that P(X > Y) = Φ(δ/√2) = 0.75; 21 a recipe
    rng = np.random.default_rng(0)
    delta = stats.norm.ppf(0.75) * math.sqrt(2)
    n, trials = seeds_for_shift(0.75), 3000
    p = stats.mannwhitneyu(rng.normal(delta, 1, (trials, n)), rng.normal(0, 1, (trials, n)), axis=1).pvalue
    assert 0.78 <= np.mean(p <= 0.05) <= 0.88  # Monte Carlo sd 0.007


def test_spending_boundaries_by_hand():
    # O'Brien–Fleming-type at t = 1/3, 2/3, 1: α(t) = 2 − 2Φ(1.96/√t) = 0.00069, 0.01637, 0.05
    increments = spending_boundaries([4, 8, 12], 12)
    spent = np.cumsum(increments)
    assert spent == pytest.approx([2 - 2 * stats.norm.cdf(Z_ALPHA * math.sqrt(3)), 0.01637, 0.05], abs=1e-5)
    assert sum(increments) == pytest.approx(0.05)
    # Pocock-type: α·ln(1 + (e − 1)·t); it spends more early
    pocock = spending_boundaries([4, 8, 12], 12, kind="pocock")
    assert pocock[0] == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 3))
    assert sum(pocock) == pytest.approx(0.05) and pocock[0] > increments[0]
    # a study that may still go on spends less than alpha so far; one look at the end is the plain test
    assert sum(spending_boundaries([5, 10], 20)) < 0.05
    assert spending_boundaries([20], 20, alpha=0.1) == [pytest.approx(0.1)]
    for bad in ([], [0, 4], [4, 4], [8, 4], [4, 25]):
        with pytest.raises(ValueError):
            spending_boundaries(bad, 20)
    with pytest.raises(ValueError):
        spending_boundaries([4], 20, kind="haybittle")


@pytest.mark.parametrize("kind", ["obrien_fleming", "pocock"])
def test_spending_boundaries_keep_the_type_i_error_under_the_null(kind):
    # 2 recipes with the same normal scores, looks at 4, 8, 12 runs a recipe, exact Mann–Whitney p-values
    rng = np.random.default_rng(1)
    trials, looks = 20000, (4, 8, 12)
    x, y = rng.normal(size=(trials, 12)), rng.normal(size=(trials, 12))
    p = np.stack(
        [stats.mannwhitneyu(x[:, :k], y[:, :k], axis=1, method="exact").pvalue for k in looks], axis=1
    )
    sequential = np.mean((p <= np.array(spending_boundaries(looks, 12, kind=kind))).any(axis=1))
    naive = np.mean((p <= 0.05).any(axis=1))  # testing at alpha at every look
    sd = math.sqrt(0.05 * 0.95 / trials)  # 0.0015
    assert sequential <= 0.05 + 2 * sd
    assert naive > 0.05 + 10 * sd  # repeated looks at 0.05 inflate the error (about 0.09 here)
