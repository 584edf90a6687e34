"""The study statistics against scipy and against numbers worked out by hand, on hand-built samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transformers_fine_tuning.study import bootstrap_mean_ci, compare, describe
from transformers_fine_tuning.study.analysis.stats import holm

# Two recipes on RTE as the papers show them: a stable one, and one with three runs collapsed to the
# constant predictor's accuracy (0.527).
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
    not_failed = [value for value, failed in zip(UNSTABLE, UNSTABLE_FAILED, strict=True) if not failed]
    levene = stats.levene(not_failed, STABLE, center="median")  # spread among the runs that did not fail
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
    assert c.std_ratio == pytest.approx(np.std(not_failed, ddof=1) / np.std(STABLE, ddof=1))
    # what the numbers say: the runs that did not fail spread like the stable recipe's; the failures show in
    # the failed-run count (3 vs 0, not significant with 10 runs each) and in the std of all runs
    assert c.brown_forsythe_p > 0.05 and c.mann_whitney_p > 0.05
    assert c.fisher_p == pytest.approx(0.2105, abs=1e-4)
    d = describe(UNSTABLE, UNSTABLE_FAILED, n_resamples=999)
    assert d.std == pytest.approx(np.std(UNSTABLE, ddof=1)) and d.std_not_failed == pytest.approx(
        np.std(not_failed, ddof=1)
    )
    assert not d.degenerate


def test_a_recipe_that_always_fails_is_degenerate_never_stable():
    """The trap of a real 32-run CoLA study: 8 of 8 runs at the majority baseline read as 'std ratio 0.00,
    Brown–Forsythe p = 2.7e-04'. Among the runs that did not fail there is no spread to test."""
    always = [0.0] * 8
    d = describe(always, [True] * 8, n_resamples=999)
    assert d.degenerate and d.std == 0.0 and math.isnan(d.std_not_failed)
    c = compare(always, [True] * 8, [0.2, 0.0, 0.25, 0.0, 0.3, 0.0, 0.22, 0.0], [False, True] * 4)
    assert math.isnan(c.std_ratio) and math.isnan(c.brown_forsythe_p)
    assert describe([0.0] * 7 + [0.3], [True] * 7 + [False], n_resamples=999).degenerate  # 1 run left
    assert (
        describe(
            [0.0] * 4 + [0.3, 0.31, 0.29, 0.3, 0.32, 0.28], [True] * 4 + [False] * 6, n_resamples=999
        ).degenerate
        is False
    )


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.005, 0.5]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.2, 0.5 times 6, 5, 4, 3, 2, 1 -> 0.03, 0.05, 0.12, 0.12 (monotone), 0.4, 0.5
    assert holm(p) == pytest.approx([0.05, 0.12, 0.12, 0.4, 0.03, 0.5])
    with_undefined = holm([0.01, float("nan"), 0.04])
    assert with_undefined[0] == pytest.approx(0.02) and math.isnan(with_undefined[1])
    assert with_undefined[2] == pytest.approx(0.04)  # m = 2: the undefined test is not counted


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


def test_two_runs_a_recipe_are_too_few_for_brown_forsythe():
    """Two values lie at the same distance from their median: no spread within either group, and Levene's
    statistic would be infinite (p = 0) whatever the runs. Three or more are tested."""
    pair = compare([0.48, 0.51], [False, False], [0.54, 0.57], [False, False])
    assert math.isnan(pair.brown_forsythe_p) and not math.isnan(pair.mann_whitney_p)
    three = compare([0.48, 0.51, 0.50], [False] * 3, [0.54, 0.57, 0.50], [False] * 3)
    assert 0 < three.brown_forsythe_p <= 1
