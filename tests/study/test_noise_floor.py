"""The dev set's noise floor on known inputs: the bootstrap of accuracy against its binomial closed form, the
bootstrap of a correlation against its asymptotic standard error, and the chi-square comparison by hand and by
its type-I error in simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transformers_fine_tuning.study.analysis.noise_floor import (
    NoiseFloor,
    accuracy_std,
    bootstrap_metric_std,
    compare_to_floor,
)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def test_accuracy_std_is_the_bootstrap_of_a_correctness_vector():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    predictions = np.where(rng.random(300) < 0.7, labels, (labels + 1) % 3)  # about 70 % correct
    a = accuracy(predictions, labels)
    # √(a(1 − a)/n); the bootstrap sd of 4000 resamples has a relative Monte Carlo error of about 1/√8000
    assert accuracy_std(a, 300) == pytest.approx(math.sqrt(a * (1 - a) / 300))
    bootstrap = bootstrap_metric_std(list(predictions), list(labels), accuracy, n_resamples=4000)
    assert bootstrap == pytest.approx(accuracy_std(a, 300), rel=0.05)
    assert bootstrap_metric_std(predictions, labels, accuracy, n_resamples=300) == bootstrap_metric_std(
        predictions, labels, accuracy, n_resamples=300
    )  # a fixed generator
    # RTE-sized: 70 % of 277 examples -> 2.75 accuracy points
    assert accuracy_std(0.7, 277) == pytest.approx(0.0275, abs=1e-4)
    assert (
        accuracy_std(1.0, 100) == 0.0
        and math.isnan(accuracy_std(0.5, 0))
        and math.isnan(accuracy_std(1.5, 10))
    )


def test_bootstrap_metric_std_of_a_correlation():
    # Pearson's r of n bivariate normal pairs has standard error ≈ (1 − ρ²)/√n: 0.64/20 = 0.032 at ρ = 0.6
    rng = np.random.default_rng(1)
    labels = rng.normal(size=400)
    predictions = 0.6 * labels + 0.8 * rng.normal(size=400)

    def pearson(p: np.ndarray, y: np.ndarray) -> float:
        return float(stats.pearsonr(p, y)[0])

    assert bootstrap_metric_std(predictions, labels, pearson, n_resamples=1000) == pytest.approx(
        0.032, rel=0.12
    )
    assert math.isnan(bootstrap_metric_std([1], [1], accuracy))
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        bootstrap_metric_std([0, 1, 1], [0, 1], accuracy)


def test_compare_to_floor_by_hand():
    # s = 0.02 over 5 runs against a floor of 0.01: (5 − 1)·(0.02/0.01)² = 16 ~ χ²₄, whose survival function is
    # e^(−x/2)·(1 + x/2) = 9·e^(−8) = 0.00302
    result = compare_to_floor(0.02, 0.01, 5)
    assert result == NoiseFloor(0.02, 0.01, pytest.approx(2.0), pytest.approx(9 * math.exp(-8)), True)
    # s at the floor: (n − 1)·1 = 9 ~ χ²₉, p = 0.437 — nothing beyond the dev set's noise
    at_floor = compare_to_floor(0.01, 0.01, 10)
    assert (
        at_floor.ratio == 1.0
        and at_floor.p_value == pytest.approx(stats.chi2.sf(9, 9))
        and not at_floor.exceeds
    )
    assert compare_to_floor(0.005, 0.01, 10).p_value > 0.9  # less spread than the floor
    # degenerate inputs: nan, never an exception
    for undefined in (
        compare_to_floor(0.02, 0.01, 1),
        compare_to_floor(math.nan, 0.01, 5),
        compare_to_floor(0, 0, 5),
    ):
        assert math.isnan(undefined.p_value) and math.isnan(undefined.ratio) and not undefined.exceeds
    zero_floor = compare_to_floor(0.02, 0.0, 5)
    assert zero_floor.ratio == math.inf and zero_floor.p_value == 0.0 and zero_floor.exceeds


def test_compare_to_floor_has_its_type_i_error():
    # normal scores whose spread is the floor's: the one-sided test rejects 5 % of the time; at twice the
    # floor with 10 runs its power is P(χ²₉ >= χ²₉(0.95)/4) = 0.895
    rng = np.random.default_rng(2)
    floor, trials = 0.01, 4000
    null = rng.normal(0.8, floor, (trials, 10)).std(axis=1, ddof=1)
    rate = np.mean([compare_to_floor(float(s), floor, 10).exceeds for s in null])
    assert rate == pytest.approx(0.05, abs=3 * math.sqrt(0.05 * 0.95 / trials))
    wide = rng.normal(0.8, 2 * floor, (400, 10)).std(axis=1, ddof=1)
    power = np.mean([compare_to_floor(float(s), floor, 10).exceeds for s in wide])
    assert power == pytest.approx(stats.chi2.sf(stats.chi2.isf(0.05, 9) / 4, 9), abs=0.05)  # sd 0.015
