"""The estimators a study decides with, on known inputs: expected best of n runs against brute force and hand
values, churn against hand counts, variance components against statsmodels' REML on known data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from transformers_fine_tuning.study.analysis.churn import pairwise_churn
from transformers_fine_tuning.study.analysis.expected_max import (
    band_limit,
    expected_max,
    expected_max_curve,
    runs_to_reach,
)
from transformers_fine_tuning.study.analysis.variance import variance_components

SCORES = [0.50, 0.70, 0.60, 0.52, 0.66]


def test_unbiased_expected_max_is_the_mean_best_over_all_subsets():
    for n in range(1, len(SCORES) + 1):
        brute = np.mean([max(subset) for subset in itertools.combinations(SCORES, n)])
        assert expected_max(SCORES, n) == pytest.approx(brute)
    assert expected_max(SCORES, 1) == pytest.approx(np.mean(SCORES))
    assert expected_max(SCORES, 5) == 0.70  # all runs: the observed best
    # by hand, n = 2 of sorted 0.50, 0.52, 0.60, 0.66, 0.70: weights C(i-1, 1)/C(5, 2) = 0, 1, 2, 3, 4 tenths
    assert expected_max(SCORES, 2) == pytest.approx((0.52 + 2 * 0.60 + 3 * 0.66 + 4 * 0.70) / 10)
    with pytest.raises(ValueError, match=r"n <= N = 5"):
        expected_max(SCORES, 6)


def test_with_replacement_expected_max_is_dodge_2019_eq_1():
    # E[max of n draws from the empirical CDF] = Σ v(i) [(i/N)^n − ((i−1)/N)^n]
    v = sorted(SCORES)
    for n in (1, 2, 3, 8):
        by_hand = sum(v[i - 1] * ((i / 5) ** n - ((i - 1) / 5) ** n) for i in range(1, 6))
        assert expected_max(SCORES, n, estimator="with_replacement") == pytest.approx(by_hand)
    assert expected_max(SCORES, 5, estimator="with_replacement") < 0.70  # biased low at n = N


def test_curve_bands_and_runs_to_reach():
    curve = expected_max_curve(SCORES, n_resamples=500)
    assert curve.n == (1, 2, 3, 4, 5) and curve.estimator == "unbiased"
    assert list(curve.mean) == sorted(curve.mean)  # more runs, a better expected best
    # bands only up to n = band_limit(5) = 1 (N/5; see test_bands_stop_where_the_bootstrap_under_covers)
    assert curve.low[0] < curve.mean[0] < curve.high[0]
    assert all(
        math.isnan(low) and math.isnan(high) for low, high in zip(curve.low[1:], curve.high[1:], strict=True)
    )
    assert expected_max_curve(SCORES, n_resamples=500) == curve  # a fixed random generator
    assert runs_to_reach(curve, 0.65) == 2 and runs_to_reach(curve, 0.70) == 5
    assert runs_to_reach(curve, 0.71) is None
    single = expected_max_curve([0.6])
    assert single.mean == (0.6,) and math.isnan(single.low[0])


def true_expected_max_of_normal(n: int, mean: float, sd: float) -> float:
    """E[max of n] of normal scores: ∫ x·n·φ(x)·Φ(x)^(n−1) dx, by quadrature."""
    value, _ = integrate.quad(lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -12, 12)
    return mean + sd * value


def test_bands_stop_where_the_bootstrap_under_covers():
    assert [band_limit(total) for total in (0, 1, 2, 9, 10, 19, 20, 40)] == [0, 0, 1, 1, 2, 3, 4, 8]
    rng = np.random.default_rng(4)
    scores = rng.normal(0.8, 0.02, 20)
    curve = expected_max_curve(scores, n_resamples=400)
    kept = band_limit(20)
    assert all(
        low < mean < high
        for low, mean, high in zip(curve.low, curve.mean, curve.high, strict=True)
        if not math.isnan(low)
    )
    assert [not math.isnan(low) for low in curve.low] == [n <= kept for n in curve.n]
    assert all(math.isnan(high) for high in curve.high[kept:])
    # the kept bands are the percentile bootstrap as before: same generator, same resamples
    resamples = np.sort(
        np.random.default_rng(0).choice(np.sort(scores), size=(400, 20), replace=True), axis=1
    )
    by_hand = [
        np.percentile([expected_max(r, n) for r in resamples], [2.5, 97.5]) for n in range(1, kept + 1)
    ]
    assert np.column_stack([curve.low[:kept], curve.high[:kept]]) == pytest.approx(np.array(by_hand))
    # with_replacement keeps the same rule
    assert math.isnan(expected_max_curve(scores, estimator="with_replacement", n_resamples=100).low[kept])

    # why: 10 normal runs, 300 simulated studies. The kept bands (n <= 2) cover the true E[max of n] most of the
    # time; a percentile band at n = N ends at the observed best (no resample beats it), and the observed best
    # is below the true E[max of N] about half the time, so no such band could cover 95 %
    truth = [true_expected_max_of_normal(n, 0.8, 0.02) for n in range(1, 11)]
    covered, best_above = np.zeros(2), 0
    for _ in range(300):
        sample = rng.normal(0.8, 0.02, 10)
        study = expected_max_curve(sample, n_resamples=400, seed=int(rng.integers(1 << 31)))
        covered += [study.low[n - 1] <= truth[n - 1] <= study.high[n - 1] for n in (1, 2)]
        best_above += sample.max() >= truth[-1]
        assert math.isnan(study.low[2]) and math.isnan(study.high[-1])
    assert np.all(covered / 300 >= 0.8)  # measured 0.86–0.91 with 1000 studies (module docstring)
    assert 0.35 <= best_above / 300 <= 0.65


def test_churn_counts_the_examples_two_runs_disagree_on():
    runs = [[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]]
    # pairs: (0,1) differ on 1 of 4, (0,2) on 2, (1,2) on 1 -> mean (0.25 + 0.5 + 0.25) / 3
    churn = pairwise_churn(runs, n_resamples=500)
    assert churn.mean == pytest.approx(1 / 3) and churn.runs == 3
    assert 0 <= churn.low <= churn.mean <= churn.high <= 0.5
    assert pairwise_churn([[0, 1], [0, 1]], n_resamples=100).mean == 0.0  # the same answers: no churn
    scores = pairwise_churn([[1.0, 2.0], [1.5, 2.0]], regression=True, n_resamples=100)
    assert scores.mean == pytest.approx(0.25)  # mean absolute difference
    assert math.isnan(pairwise_churn([[0, 1]]).mean)
    with pytest.raises(ValueError, match="different numbers of examples"):
        pairwise_churn([[0, 1], [0]])


def known_grid(rng, levels=(8, 6), sds=(0.03, 0.02), noise=0.01) -> dict[tuple, float]:
    effects = [rng.normal(0, sd, size) for size, sd in zip(levels, sds, strict=True)]
    return {
        key: 0.6 + sum(effect[k] for effect, k in zip(effects, key, strict=True)) + rng.normal(0, noise)
        for key in itertools.product(*(range(size) for size in levels))
    }


@pytest.mark.filterwarnings("ignore:The MLE may be on the boundary")
def test_variance_components_match_statsmodels_reml():
    pd = pytest.importorskip("pandas")
    sm = pytest.importorskip("statsmodels.api")
    grid = known_grid(np.random.default_rng(1))
    components = variance_components(grid, ["init", "data order"], n_resamples=300)
    frame = pd.DataFrame([{"init": i, "data": j, "y": y} for (i, j), y in grid.items()]).assign(group=1)
    model = sm.MixedLM.from_formula(
        "y ~ 1", groups="group", vc_formula={"init": "0 + C(init)", "data": "0 + C(data)"}, data=frame
    )
    fit = model.fit(reml=True)
    reml = dict(zip(model.exog_vc.names, fit.vcomp, strict=True))
    assert components.variances["init"] == pytest.approx(reml["init"], rel=1e-3)
    assert components.variances["data order"] == pytest.approx(reml["data"], rel=1e-3)
    assert components.variances["residual"] == pytest.approx(fit.scale, rel=1e-3)
    assert sum(components.shares.values()) == pytest.approx(1.0)
    assert components.levels == {"init": 8, "data order": 6} and components.runs == 48
    for name, (low, high) in components.intervals.items():
        assert 0 <= low <= high <= 1, name
    # the known truth: init 0.03² dominates data 0.02² and the noise 0.01²
    assert components.shares["init"] > components.shares["data order"] > components.shares["residual"]


def test_variance_components_by_hand_and_three_factors():
    # 2 x 2, y = init effect only: all variance is init's, none the data order's or the residual's
    exact = {(0, 0): 0.5, (0, 1): 0.5, (1, 0): 0.7, (1, 1): 0.7}
    components = variance_components(exact, ["init", "data order"], n_resamples=50)
    # MS_init = 2 * ((0.5-0.6)^2 + (0.7-0.6)^2) / 1 = 0.04, MS_e = 0: sigma^2_init = 0.04 / 2 = 0.02
    assert components.variances["init"] == pytest.approx(0.02)
    assert components.variances["data order"] == 0.0 and components.variances["residual"] == pytest.approx(
        0.0
    )
    three = variance_components(
        known_grid(np.random.default_rng(2), levels=(5, 4, 3), sds=(0.02, 0.01, 0.03)),
        ["init", "data order", "dropout"],
        n_resamples=100,
    )
    assert set(three.shares) == {"init", "data order", "dropout", "residual"}
    assert sum(three.shares.values()) == pytest.approx(1.0)


def test_variance_components_need_the_complete_grid():
    grid = known_grid(np.random.default_rng(3), levels=(3, 3))
    del grid[(1, 2)]
    with pytest.raises(ValueError, match="1 of the 9 combinations"):
        variance_components(grid, ["init", "data order"])
    with pytest.raises(ValueError, match="fewer than two levels"):
        variance_components({(0, 0): 0.5, (0, 1): 0.6}, ["init", "data order"])
