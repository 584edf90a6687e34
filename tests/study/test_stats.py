"""The study statistics against scipy and against numbers worked out by hand, on hand-built samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transformers_fine_tuning.study import bootstrap_mean_ci, compare, describe

# Two recipes on RTE as the papers show them: a stable one, and one with three runs collapsed to the
# majority-class accuracy (0.527).
STABLE = [0.70, 0.71, 0.69, 0.72, 0.70, 0.68, 0.71, 0.73, 0.70, 0.69]
UNSTABLE = [0.74, 0.527, 0.72, 0.527, 0.75, 0.73, 0.527, 0.71, 0.76, 0.72]
UNSTABLE_FAILED = [value <= 0.527 for value in UNSTABLE]


def test_describe_matches_numpy_and_hand_counts():
    d = describe(UNSTABLE, UNSTABLE_FAILED, n_resamples=2000)
    assert d.n == 10 and d.failed_runs == 3
    assert d.mean == pytest.approx(np.mean(UNSTABLE))
    assert d.std == pytest.approx(np.std(UNSTABLE, ddof=1))  # the sample standard deviation
    assert d.median == pytest.approx(0.72) and d.minimum == 0.527 and d.maximum == 0.76
    assert d.ci_low < d.mean < d.ci_high


def test_bootstrap_interval_is_scipys_bca_and_reproducible():
    low, high = bootstrap_mean_ci(UNSTABLE, n_resamples=4000, seed=7)
    reference = stats.bootstrap(
        (np.asarray(UNSTABLE),), np.mean, n_resamples=4000, method="BCa", rng=np.random.default_rng(7)
    ).confidence_interval
    assert (low, high) == pytest.approx((reference.low, reference.high))
    assert bootstrap_mean_ci(UNSTABLE, n_resamples=4000, seed=7) == (low, high)
    # a 95 % interval of the mean of these ten values: wide, because of the failed runs
    assert 0.58 < low < np.mean(UNSTABLE) < high < 0.73


def test_bootstrap_degenerate_inputs():
    assert all(math.isnan(bound) for bound in bootstrap_mean_ci([0.5]))
    assert bootstrap_mean_ci([0.527] * 5) == (0.527, 0.527)  # every run collapsed: no spread to resample


def test_compare_matches_scipy():
    c = compare(UNSTABLE, UNSTABLE_FAILED, STABLE, [False] * len(STABLE))
    levene = stats.levene(UNSTABLE, STABLE, center="median")
    whitney = stats.mannwhitneyu(UNSTABLE, STABLE, alternative="two-sided")
    fisher = stats.fisher_exact([[3, 7], [0, 10]])
    assert c.brown_forsythe_statistic == pytest.approx(levene.statistic)
    assert c.brown_forsythe_p == pytest.approx(levene.pvalue)
    assert c.mann_whitney_u == pytest.approx(whitney.statistic)
    assert c.mann_whitney_p == pytest.approx(whitney.pvalue)
    assert c.fisher_odds_ratio == pytest.approx(fisher.statistic) and c.fisher_p == pytest.approx(
        fisher.pvalue
    )
    assert c.mean_difference == pytest.approx(np.mean(UNSTABLE) - np.mean(STABLE))
    assert c.std_ratio == pytest.approx(np.std(UNSTABLE, ddof=1) / np.std(STABLE, ddof=1))
    # what the numbers say: a much larger spread, no clear shift in location, 3 vs 0 failures not significant
    assert (
        c.brown_forsythe_p < 0.05
        and c.mann_whitney_p > 0.05
        and c.fisher_p == pytest.approx(0.2105, abs=1e-4)
    )


def test_brown_forsythe_by_hand():
    # Brown–Forsythe = one-way ANOVA on the absolute deviations from each group's median.
    x, y = [1.0, 2.0, 3.0, 10.0], [4.0, 5.0, 5.0, 6.0]
    dx = np.abs(np.subtract(x, np.median(x)))  # [1.5, 0.5, 0.5, 7.5]
    dy = np.abs(np.subtract(y, np.median(y)))  # [1, 0, 0, 1]
    anova = stats.f_oneway(dx, dy)
    c = compare(x, [False] * 4, y, [False] * 4)
    assert c.brown_forsythe_statistic == pytest.approx(anova.statistic)
    assert c.brown_forsythe_p == pytest.approx(anova.pvalue)


def test_fisher_exact_by_hand():
    # 2 of 4 failed vs 0 of 4. With the margins fixed (4 and 4 runs, 2 failures), the failures of the first
    # recipe are hypergeometric: P(0) = P(2) = C(4,2)/C(8,2) = 6/28, P(1) = 16/28. Two-sided: the tables at
    # most as likely as the observed one, P(2) + P(0) = 12/28 = 3/7.
    c = compare([0.5, 0.5, 0.8, 0.8], [True, True, False, False], [0.8] * 4, [False] * 4)
    assert c.fisher_p == pytest.approx(3 / 7)


def test_compare_degenerate_inputs_give_nan_not_errors():
    c = compare([0.5, 0.5], [True, True], [0.5, 0.5], [True, True])  # every value equal
    assert math.isnan(c.brown_forsythe_p) and math.isnan(c.std_ratio)
    assert c.fisher_p == 1.0 and c.mean_difference == 0.0
    lonely = compare([0.7], [False], [0.6, 0.65], [False, False])  # one run: no spread to test
    assert math.isnan(lonely.brown_forsythe_p) and not math.isnan(lonely.mann_whitney_p)
    empty = compare([], [], [0.6, 0.65], [False, False])
    assert (
        math.isnan(empty.mann_whitney_p) and math.isnan(empty.fisher_p) and math.isnan(empty.mean_difference)
    )
    with pytest.raises(ValueError):
        describe([0.5, 0.6], [True])
    assert describe([], []).n == 0
