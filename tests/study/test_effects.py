"""Two-sample effects on known inputs: the direction of the Mann–Whitney statistic against the means, P(X > Y)
by hand and its interval's coverage by simulation, the Hodges–Lehmann interval by hand and as the inversion of
scipy's exact Mann–Whitney test, the two-sample bootstrap, and deepsig's Almost Stochastic Order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transformers_fine_tuning.study.analysis.effects import (
    Interval,
    _null_cdf,
    almost_stochastic_order,
    bootstrap_difference,
    hodges_lehmann,
    location_direction,
    superiority,
)
from transformers_fine_tuning.study.analysis.expected_max import expected_max

BASELINE = [0.80] * 16 + [0.30] * 4  # 4 failed runs of 20
RECIPE = [0.75] * 20


def test_the_direction_follows_mann_whitney_not_the_mean():
    # the recipe's mean is higher (0.75 > 0.70), but it beats the baseline only in the 4 x 20 pairs against a
    # failed run: P(recipe > baseline) = 80 / 400 = 0.2, so U − n₁n₂/2 = 80 − 200 < 0
    assert np.mean(RECIPE) > np.mean(BASELINE)
    assert superiority(RECIPE, BASELINE).estimate == pytest.approx(0.2)
    assert location_direction(RECIPE, BASELINE) == -1
    assert location_direction(BASELINE, RECIPE) == +1
    assert stats.mannwhitneyu(RECIPE, BASELINE).statistic == pytest.approx(
        80
    )  # scipy's U of the first sample
    assert location_direction([1, 2], [2, 1]) == 0 and location_direction([], [1.0]) == 0


def test_superiority_by_hand_with_ties():
    # pairs (x, y): 1 vs 1 tie (½), 1 vs 3 lose, 2 vs 1 win, 2 vs 3 lose, 4 vs 1 win, 4 vs 3 win -> 3.5 / 6
    result = superiority([1, 2, 4], [1, 3])
    assert isinstance(result, Interval)
    assert result.estimate == pytest.approx(3.5 / 6)
    assert superiority([1, 3], [1, 2, 4]).estimate == pytest.approx(1 - 3.5 / 6)  # the complement
    assert superiority([3.0, 4.0], [3.0, 4.0]).estimate == 0.5


def test_superiority_interval_is_newcombe_method_5():
    x, y = [0.61, 0.70, 0.72, 0.75, 0.78, 0.80], [0.55, 0.60, 0.66, 0.71, 0.74]
    result = superiority(x, y)
    m, n, z = 6, 5, stats.norm.ppf(0.975)
    n_star = (m + n) / 2 - 1

    def variance(theta):
        return (
            theta * (1 - theta) * (1 + n_star * ((1 - theta) / (2 - theta) + theta / (1 + theta))) / (m * n)
        )

    # both bounds solve (Â − θ)² = z²·V(θ), one on each side of Â
    assert result.low < result.estimate < result.high
    for bound in (result.low, result.high):
        assert (result.estimate - bound) ** 2 == pytest.approx(z * z * variance(bound), rel=1e-8)
    # complete separation: Â = 0 with a non-degenerate upper bound, and the mirror image
    apart = superiority([1, 2, 3], [4, 5, 6])
    assert apart.estimate == 0 and apart.low == 0 and 0.3 < apart.high < 1
    mirror = superiority([4, 5, 6], [1, 2, 3])
    assert mirror.high == 1 and mirror.low == pytest.approx(1 - apart.high)
    # degenerate inputs: nan, never an exception
    assert math.isnan(superiority([], [1.0]).estimate)
    single = superiority([1.0], [0.0, 2.0])
    assert single.estimate == 0.5 and math.isnan(single.low) and math.isnan(single.high)


@pytest.mark.parametrize("shift", [0.5, 1.5])
def test_superiority_interval_covers_in_small_samples(shift):
    # 10 vs 10 normal scores, X shifted by `shift` sds: true P(X > Y) = Φ(shift / √2)
    truth = stats.norm.cdf(shift / math.sqrt(2))
    rng = np.random.default_rng(7)
    trials = 800
    covered = sum(
        result.low <= truth <= result.high
        for result in (superiority(rng.normal(shift, 1, 10), rng.normal(0, 1, 10)) for _ in range(trials))
    )
    # Monte Carlo sd at 0.95: 0.008; Newcombe's method 5 is close to nominal here
    assert 0.925 <= covered / trials <= 0.975


def test_hodges_lehmann_by_hand():
    x, y = [1.0, 3.0, 6.0, 10.0, 15.0], [0.0, 2.0, 4.5, 7.0, 9.5]
    differences = np.sort(np.subtract.outer(x, y).ravel())
    result = hodges_lehmann(x, y)
    assert result.estimate == pytest.approx(np.median(differences))
    # 5 vs 5: #arrangements with U = 0, 1, 2, 3 of C(10, 5) = 252 are 1, 1, 2, 3, so P(U <= 2) = 4/252 <= 0.025 <
    # P(U <= 3) = 7/252: k = 3, the interval is the 3rd smallest to the 3rd largest of the 25 differences
    assert _null_cdf(5, 5)[:4] * 252 == pytest.approx([1, 2, 4, 7])
    assert (result.low, result.high) == (differences[2], differences[22])
    # 2 vs 2 cannot reach 95 %: P(U = 0) = 1/6 > 0.025 — no interval, a nan
    small = hodges_lehmann([1.0, 2.0], [0.0, 0.5])
    assert small.estimate == pytest.approx(np.median([1.0, 0.5, 2.0, 1.5])) and math.isnan(small.low)
    assert math.isnan(small.high) and math.isnan(hodges_lehmann([1.0], [0.0, 2.0, 3.0]).low)


@pytest.mark.parametrize(("m", "n"), [(3, 4), (7, 9), (12, 5)])
def test_null_distribution_matches_scipys_exact_mann_whitney(m, n):
    rng = np.random.default_rng(m * 100 + n)
    for _ in range(5):
        x, y = rng.normal(size=m), rng.normal(size=n)
        result = stats.mannwhitneyu(x, y, alternative="less", method="exact")  # P(U_x <= u)
        assert _null_cdf(m, n)[int(result.statistic)] == pytest.approx(result.pvalue, rel=1e-10)


@pytest.mark.parametrize(("m", "n", "level"), [(7, 9, 0.95), (6, 6, 0.9), (12, 5, 0.99)])
def test_hodges_lehmann_interval_inverts_the_mann_whitney_test(m, n, level):
    # the interval holds exactly the shifts δ that the two-sided exact test of x − δ vs y does not reject
    rng = np.random.default_rng(m + n)
    x, y = rng.normal(0.3, 1, m), rng.normal(0, 1, n)
    result = hodges_lehmann(x, y, confidence_level=level)
    alpha, eps = 1 - level, 1e-9

    def p_value(delta):
        return stats.mannwhitneyu(np.asarray(x) - delta, y, method="exact").pvalue

    assert p_value(result.low - eps) <= alpha < p_value(result.low + eps)
    assert p_value(result.high + eps) <= alpha < p_value(result.high - eps)


def test_hodges_lehmann_normal_approximation_for_large_samples():
    # 60 vs 60 (beyond the exact limit) against the exact ranks the counted distribution gives
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.5, 1, 60), rng.normal(0, 1, 60)
    differences = np.sort(np.subtract.outer(x, y).ravel())
    exact_k = int(np.count_nonzero(_null_cdf(60, 60) <= 0.025))
    result = hodges_lehmann(x, y)
    low_rank = int(np.searchsorted(differences, result.low)) + 1
    assert abs(low_rank - exact_k) <= 1
    assert result.high == differences[differences.size - low_rank]
    assert result.low < result.estimate < result.high


def test_hodges_lehmann_covers_the_shift():
    rng = np.random.default_rng(11)
    trials = 400
    covered = 0
    for _ in range(trials):
        result = hodges_lehmann(rng.standard_t(3, 8) + 1.0, rng.standard_t(3, 8))
        covered += result.low <= 1.0 <= result.high
    # exact: 1 − 2·P(U <= k − 1) = 0.95 or a little more for 8 vs 8 (Monte Carlo sd 0.011)
    assert covered / trials >= 0.925


def test_bootstrap_difference():
    x, y = [0.0, 1.0], [0.0, 0.0]
    # y resamples to 0 always; x's resampled mean is 0, ½ or 1 with probabilities ¼, ½, ¼: the 2.5th and 97.5th
    # percentiles are 0 and 1
    result = bootstrap_difference(x, y, np.mean, n_resamples=400)
    assert result == Interval(0.5, 0.0, 1.0)
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.8, 0.02, 12), rng.normal(0.78, 0.02, 10)
    mean = bootstrap_difference(a, b, np.mean)
    assert mean.estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert mean.low < mean.estimate < mean.high
    assert bootstrap_difference(a, b, np.mean) == mean  # a fixed generator
    assert bootstrap_difference(a, b, np.mean, seed=1) != mean
    # ΔE[best of n]: best of 1 is the mean; best of 10 uses the unbiased estimator on every resample
    assert bootstrap_difference(a, b, lambda v: expected_max(v, 1)).estimate == pytest.approx(mean.estimate)
    best = bootstrap_difference(a, b, lambda v: expected_max(v, 10), n_resamples=300)
    assert best.estimate == pytest.approx(expected_max(a, 10) - expected_max(b, 10))
    assert best.low <= best.high
    assert math.isnan(bootstrap_difference([], b, np.mean).estimate)
    assert math.isnan(bootstrap_difference([1.0], b, np.mean).low)


def test_bootstrap_difference_of_means_covers():
    rng = np.random.default_rng(9)
    trials, covered = 150, 0
    for _ in range(trials):
        result = bootstrap_difference(rng.normal(1, 1, 20), rng.normal(0, 2, 20), np.mean, n_resamples=300)
        covered += result.low <= 1.0 <= result.high
    assert 0.88 <= covered / trials <= 0.99  # percentile bootstrap, 20 vs 20: a little below 0.95


def test_almost_stochastic_order_follows_deepsig():
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.70, 0.01, 10), rng.normal(0.80, 0.01, 10)
    state = np.random.get_state()[1].copy()
    # deepsig's convention: ε_min < 0.5 means the first sample is almost stochastically larger
    assert almost_stochastic_order(high, low, num_bootstrap_iterations=50) < 0.05
    assert almost_stochastic_order(low, high, num_bootstrap_iterations=50) > 0.95
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global generator is left as it was
    # the same empirical distribution: no order, ε_min at ½ or above
    same = rng.normal(0.75, 0.02, 10)
    assert almost_stochastic_order(same, rng.permutation(same), num_bootstrap_iterations=50) >= 0.5
    # reproducible, and as deepsig computes it
    value = almost_stochastic_order(high - 0.09, low, num_bootstrap_iterations=50, seed=3)
    from deepsig import aso

    expected = aso(high - 0.09, low, num_bootstrap_iterations=50, num_jobs=1, show_progress=False, seed=3)
    assert value == pytest.approx(float(expected))
    assert 0 < value < 0.5
    assert math.isnan(almost_stochastic_order([0.5], low)) and math.isnan(
        almost_stochastic_order([0.5, 0.5], [0.5, 0.5])
    )
