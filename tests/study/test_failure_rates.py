"""Failure rates on known inputs: Clopper–Pearson against its Beta-quantile form, Newcombe's difference
interval against the published Table II of Newcombe (1998) and statsmodels, and the restarts a recipe needs
by hand and by exact coverage."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from transformers_fine_tuning.study.analysis.effects import Interval
from transformers_fine_tuning.study.analysis.failure_rates import (
    clopper_pearson,
    newcombe_difference,
    runs_for_success,
    success_within,
)


def test_clopper_pearson_is_the_beta_quantile_interval():
    # exact interval: Beta(α/2; k, n − k + 1) to Beta(1 − α/2; k + 1, n − k)
    for k, n in [(1, 10), (3, 20), (7, 9)]:
        result = clopper_pearson(k, n)
        assert result.estimate == pytest.approx(k / n)
        assert result.low == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1))
        assert result.high == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k))
    assert clopper_pearson(1, 10) == Interval(
        0.1, pytest.approx(0.00253, abs=1e-5), pytest.approx(0.44502, abs=1e-5)
    )
    # at the edges, by hand: 0/n has upper bound 1 − (α/2)^(1/n), n/n the mirror image
    assert clopper_pearson(0, 10) == Interval(0.0, 0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == Interval(1.0, pytest.approx(0.025 ** (1 / 10)), 1.0)
    assert clopper_pearson(2, 10, confidence_level=0.8).high < clopper_pearson(2, 10).high
    assert all(math.isnan(value) for value in (clopper_pearson(0, 0).estimate, clopper_pearson(0, 0).low))
    with pytest.raises(ValueError):
        clopper_pearson(11, 10)


# Newcombe (1998), Stat. Med. 17:873, Table II, method 10 (hybrid score), 95 %
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), 0.0524, 0.3339),
    ((9, 10, 3, 10), 0.1705, 0.8090),
    ((5, 56, 0, 29), -0.0381, 0.1926),
    ((0, 10, 0, 20), -0.1611, 0.2775),
    ((0, 10, 0, 10), -0.2775, 0.2775),
    ((10, 10, 0, 20), 0.6791, 1.0000),
    ((10, 10, 0, 10), 0.6075, 1.0000),
]


@pytest.mark.parametrize(("counts", "low", "high"), NEWCOMBE_TABLE_II)
def test_newcombe_difference_matches_the_published_table(counts, low, high):
    k1, n1, k2, n2 = counts
    result = newcombe_difference(k1, n1, k2, n2)
    assert result.estimate == pytest.approx(k1 / n1 - k2 / n2)
    assert result.low == pytest.approx(low, abs=5e-5) and result.high == pytest.approx(high, abs=5e-5)


def test_newcombe_difference_matches_statsmodels_and_edges():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for k1, n1, k2, n2 in [(6, 7, 2, 7), (3, 20, 7, 20), (1, 12, 0, 15)]:
        low, high = proportion.confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
        result = newcombe_difference(k1, n1, k2, n2)
        assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    # 0/10 − 0/10: the Wilson upper bound of 0/10 on either side; swapping the samples mirrors the interval
    none = newcombe_difference(0, 10, 0, 10)
    assert none.estimate == 0 and none.low == pytest.approx(-none.high)
    swapped = newcombe_difference(48, 80, 56, 70)
    assert (swapped.low, swapped.high) == (pytest.approx(-0.3339, abs=5e-5), pytest.approx(-0.0524, abs=5e-5))
    assert all(
        math.isnan(v) for v in (newcombe_difference(0, 0, 1, 5).estimate, newcombe_difference(1, 5, 0, 0).low)
    )


def test_success_within_by_hand():
    # 1 of 10 runs failed, 3 runs: 1 − 0.1³ = 0.999; the band maps Clopper–Pearson's (0.00253, 0.44502)
    rate = clopper_pearson(1, 10)
    result = success_within(1, 10, 3)
    assert result.estimate == pytest.approx(0.999)
    assert result.low == pytest.approx(1 - rate.high**3) and result.high == pytest.approx(1 - rate.low**3)
    assert result.low == pytest.approx(1 - 0.44502**3, abs=1e-4)
    assert success_within(0, 10, 1) == Interval(1.0, pytest.approx(0.025 ** (1 / 10)), 1.0)
    everything_failed = success_within(10, 10, 5)
    assert everything_failed.estimate == 0 and everything_failed.low == 0 and everything_failed.high > 0
    assert math.isnan(success_within(0, 0, 3).estimate)
    with pytest.raises(ValueError):
        success_within(1, 10, 0)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.7])
def test_success_within_band_covers_exactly(p):
    # the band is a monotone image of Clopper–Pearson's interval, so it covers 1 − p^runs whenever that
    # covers p: at least 95 % — computed exactly over the binomial outcomes of 12 runs
    n, runs = 12, 4
    truth = 1 - p**runs
    coverage = sum(
        stats.binom.pmf(k, n, p)
        for k in range(n + 1)
        if (band := success_within(k, n, runs)).low <= truth <= band.high
    )
    assert coverage >= 0.95


def test_runs_for_success_by_hand():
    # p = 0.1: 1 − 0.1 = 0.9 < 0.95 <= 1 − 0.1² — 2 runs; the upper bound 0.44502: 0.44502³ = 0.088 > 0.05 >=
    # 0.44502⁴ = 0.039 — 4 runs
    assert runs_for_success(1, 10) == (2, 4)
    # p = 0.5: 1 − 0.5⁴ = 0.9375 < 0.95 <= 1 − 0.5⁵; upper bound 0.8129: ln 0.05 / ln 0.8129 = 14.5 — 15 runs
    assert runs_for_success(5, 10) == (5, 15)
    assert runs_for_success(0, 10) == (1, 3)  # 0.3085³ = 0.029 <= 0.05 < 0.3085² = 0.095
    assert runs_for_success(10, 10) == (None, None)  # every run failed: no number of runs suffices
    # p = 0.9: 0.9²⁸ = 0.052 > 0.05 >= 0.9²⁹ = 0.047; the upper bound 0.975^(1/10) = 0.99747 is below 1, so a
    # (very) large number of runs suffices: ln 0.05 / ln 0.99747 = 1183
    assert runs_for_success(9, 10) == (29, pytest.approx(1183, abs=1))
    # another target: 1 − 0.1² = 0.99 >= 0.985; 0.44502⁵ = 0.017 > 0.015 >= 0.44502⁶ = 0.008
    assert runs_for_success(1, 10, probability=0.985) == (2, 6)
    assert runs_for_success(0, 0) == (None, None)
    # exactly at the target: p = 0.25 and a 75 % target take one run
    assert runs_for_success(5, 20, probability=0.75)[0] == 1
    with pytest.raises(ValueError):
        runs_for_success(1, 10, probability=1.0)
