"""Where a study's spread comes from: the share of variance due to each seed, for crossed seeds.

With the head-initialisation seed crossed with the data-order seed (``seeds`` × ``data_seeds``, every pair run
once), the final scores y follow the random-effects model y = μ + a_init + b_data + e, with independent effects
of variances σ²_init, σ²_data and a residual σ²_e (their interaction and everything else; Dodge et al. 2020,
"Fine-Tuning Pretrained Language Models: Weight Initializations, Data Orders, and Early Stopping", Sec. 4).
The variances are estimated by the method of moments on the two-way ANOVA table (the expected mean squares of a
balanced crossed design; Searle, Casella & McCulloch 1992, Sec. 4.5): for a factor f with L_f levels over N
runs,

    MS_f = (N / L_f) Σ_l (ȳ_f,l − ȳ)² / (L_f − 1),   MS_e = SS_residual / df_residual,
    σ²_f = max(0, (MS_f − MS_e) / (N / L_f)),          σ²_e = MS_e,

which for a balanced design equals the REML estimate whenever that is positive (tested against statsmodels'
``MixedLM``). It works for any number of crossed factors (a dropout seed, a data-subset seed). Intervals of each
share come from the multi-way bootstrap (Owen 2007, "The pigeonhole bootstrap"): the levels of every factor are
resampled independently, the grid they select re-estimated.

How many seeds it needs: an estimate of σ²_f rests on L_f − 1 degrees of freedom, so its relative standard error
is about √(2 / (L_f − 1)) — 71 % with 5 seeds, 47 % with 10, 32 % with 20. Fewer than 5 levels per factor
gives a share that means little; the bootstrap interval says how little.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["VarianceComponents", "variance_components"]


@dataclass(frozen=True)
class VarianceComponents:
    """Variance of each factor and of the residual, their shares of the total, and bootstrap intervals.

    ``levels[f]`` is the number of levels of factor f; ``shares[name]`` and ``intervals[name]`` (low, high)
    are given for every factor and for ``"residual"``.
    """

    factors: tuple[str, ...]
    levels: dict[str, int]
    variances: dict[str, float]
    shares: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    runs: int


def _grid(
    observations: Sequence[tuple[Sequence[object], float]], factors: int
) -> tuple[np.ndarray, list[list]]:
    """The scores as an array with one axis per factor; raises unless every combination is there once."""
    levels = [sorted({key[f] for key, _ in observations}, key=str) for f in range(factors)]
    shape = tuple(len(values) for values in levels)
    grid = np.full(shape, np.nan)
    index = [{value: i for i, value in enumerate(values)} for values in levels]
    for key, value in observations:
        position = tuple(index[f][key[f]] for f in range(factors))
        if not np.isnan(grid[position]):
            raise ValueError(f"the combination {tuple(key)} appears twice; each must be run once")
        grid[position] = value
    missing = int(np.isnan(grid).sum())
    if missing:
        raise ValueError(
            f"{missing} of the {grid.size} combinations of the crossed seeds have no completed run: the "
            "decomposition needs the complete grid (finish or retry the missing runs)"
        )
    return grid, levels


def _estimate(grid: np.ndarray) -> tuple[np.ndarray, float]:
    """Method-of-moments variances of each axis's main effect, and the residual variance."""
    total = grid.size
    mean = grid.mean()
    variances, ss_effects, df_effects = [], 0.0, 0
    for axis in range(grid.ndim):
        others = tuple(a for a in range(grid.ndim) if a != axis)
        level_means = grid.mean(axis=others)
        per_level = total / grid.shape[axis]
        ss = per_level * float(((level_means - mean) ** 2).sum())
        ss_effects += ss
        df_effects += grid.shape[axis] - 1
        variances.append((ss, grid.shape[axis] - 1, per_level))
    df_residual = total - 1 - df_effects
    ss_residual = float(((grid - mean) ** 2).sum()) - ss_effects
    ms_residual = max(ss_residual, 0.0) / df_residual if df_residual > 0 else float("nan")
    effects = np.array(
        [max(0.0, (ss / df - ms_residual) / per_level) if df > 0 else 0.0 for ss, df, per_level in variances]
    )
    return effects, ms_residual


def _shares(effects: np.ndarray, residual: float) -> np.ndarray:
    parts = np.append(effects, residual)
    total = parts.sum()
    return parts / total if total > 0 else np.full(parts.shape, np.nan)


def variance_components(
    observations: Sequence[tuple[Sequence[object], float]] | Mapping[tuple, float],
    factors: Sequence[str],
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> VarianceComponents:
    """Decompose the variance of ``observations`` — ``(levels, score)`` pairs, one level per factor (e.g.
    ``((seed, data_seed), accuracy)``) — into the factors' shares and the residual's (see the module docstring).

    Raises:
        ValueError: a combination is missing or repeated, or a factor has fewer than two levels.
    """
    items = list(observations.items()) if isinstance(observations, Mapping) else list(observations)
    grid, levels = _grid(items, len(factors))
    few = [name for name, values in zip(factors, levels, strict=True) if len(values) < 2]
    if few:
        raise ValueError(f"factor(s) {few} have fewer than two levels: nothing to decompose")
    if grid.size <= 1 + sum(len(values) - 1 for values in levels):
        raise ValueError("the grid leaves no degrees of freedom for the residual: add levels")
    effects, residual = _estimate(grid)
    shares = _shares(effects, residual)
    generator = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        picks = [generator.integers(0, size, size=size) for size in grid.shape]
        draws.append(_shares(*_estimate(grid[np.ix_(*picks)])))
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.nanpercentile(np.array(draws), [tail, 100 - tail], axis=0)
    names = [*factors, "residual"]
    return VarianceComponents(
        factors=tuple(factors),
        levels={name: len(values) for name, values in zip(factors, levels, strict=True)},
        variances=dict(zip(names, map(float, np.append(effects, residual)), strict=True)),
        shares=dict(zip(names, map(float, shares), strict=True)),
        intervals={name: (float(lo), float(hi)) for name, lo, hi in zip(names, low, high, strict=True)},
        runs=grid.size,
    )
