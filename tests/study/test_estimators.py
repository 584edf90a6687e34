"""The estimators a study decides with, on known inputs: expected best of n runs against brute force and hand
values, churn against hand counts, variance components against statsmodels' REML on known data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from transformers_fine_tuning.study.churn import pairwise_churn
from transformers_fine_tuning.study.expected_max import expected_max, expected_max_curve, runs_to_reach
from transformers_fine_tuning.study.variance import variance_components

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
    assert all(low <= high for low, high in zip(curve.low, curve.high, strict=True))
    assert curve.low[0] < curve.mean[0] < curve.high[0]
    assert expected_max_curve(SCORES, n_resamples=500) == curve  # a fixed random generator
    assert runs_to_reach(curve, 0.65) == 2 and runs_to_reach(curve, 0.70) == 5
    assert runs_to_reach(curve, 0.71) is None
    single = expected_max_curve([0.6])
    assert single.mean == (0.6,) and math.isnan(single.low[0])


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
