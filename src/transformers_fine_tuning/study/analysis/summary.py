"""The study's numbers: per task × recipe, the distribution of final scores, its failures, what n runs buy, the
tests against the baseline recipe, the dev set's noise floor, the variance shares of crossed seeds.

Computing only: :mod:`..report.tables` writes these numbers as CSV, :mod:`..report.markdown` and :mod:`..report.verdict` as words, and
:mod:`..report.files` writes the report's files.

**Every completed run is counted**, in n and in the failed runs: a pruned run with the score it stopped at, a run
whose final metric is non-finite (``results.json`` writes null) at the best constant predictor's score — what a
model that learnt nothing is worth at most — and as failed (:mod:`transformers_fine_tuning.failure`). Runs that
ended in an error or are still to run are counted beside them, so that an unfinished study cannot pass for a
finished one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..run.store import COMPLETED, CRASHED, ERROR, RunRecord
from .churn import Churn, pairwise_churn
from .effects import Interval
from .expected_max import ExpectedMax, expected_max_curve, runs_to_reach
from .failure_rates import runs_for_success, success_within
from .noise_floor import NoiseFloor, accuracy_std, bootstrap_metric_std, compare_to_floor
from .stats import Comparison, Description, compare, describe, holm
from .variance import VarianceComponents, variance_components

__all__ = [
    "FACTORS",
    "GroupSummary",
    "constant_baseline_of",
    "order_by",
    "score_of",
    "summarize",
    "variance_factors",
]

FACTORS = {"seed": "init", "data_seed": "data order", "subset_seed": "subset", "dropout_seed": "dropout"}
"""The seeds a study can cross (:mod:`...seeds`), as the variance table names them."""


@dataclass(frozen=True)
class GroupSummary:
    """One task × recipe: its description, its comparison with the baseline recipe, what n runs buy, its
    churn and compute, the variance shares of crossed seeds, its unfinished runs.

    ``success_within``: P(at least one of n runs does not fail) at the group's n, with its band from the
    Clopper–Pearson interval of the failure rate; ``runs_for_success``: the runs that make it 95 %, at the
    estimate and at the interval's pessimistic end. ``noise_floor``: the seed-to-seed spread against what the
    finite dev set alone produces. ``unscored``: completed runs without a finite score (counted at the constant
    baseline's)."""

    task: str
    recipe: str
    metric: str | None
    split: str | None
    constant_baseline: float | None
    baseline_recipe: str
    description: Description
    comparison: Comparison | None  # None for the baseline recipe itself
    errors: int
    unfinished: int
    expected_max: ExpectedMax | None = None
    runs_to_target: int | None = None
    churn: Churn | None = None
    pruned: int = 0
    compute_s: float = 0.0
    variance: VarianceComponents | None = None
    success_within: Interval | None = None
    runs_for_success: tuple[int | None, int | None] = (None, None)
    noise_floor: NoiseFloor | None = None
    unscored: int = 0

    @property
    def compute_per_success_s(self) -> float | None:
        """Compute spent (all completed runs' wall time) per run that did not fail."""
        successes = self.description.n - self.description.failed_runs
        return self.compute_s / successes if successes else None


_TESTS = ("brown_forsythe_p", "mann_whitney_p", "fisher_p")


def order_by(names: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``names`` (once each) in the ``preferred`` order, any others after them in order of appearance."""
    present = list(dict.fromkeys(names))
    return [name for name in preferred if name in present] + [
        name for name in present if name not in preferred
    ]


def constant_baseline_of(runs: Sequence[RunRecord]) -> float | None:
    """The best constant predictor's score of a task's runs (their median: runs on other subsets may differ)."""
    values = [run.constant_baseline for run in runs if run.constant_baseline is not None]
    return float(np.median(values)) if values else None


def score_of(run: RunRecord) -> float | None:
    """The score a completed run counts with: its final main metric, or when that is missing or non-finite the
    best constant predictor's (``None`` when neither is known)."""
    if run.main_metric is not None and math.isfinite(run.main_metric):
        return float(run.main_metric)
    return run.constant_baseline


def variance_factors(runs: Sequence[RunRecord]) -> list[tuple[str, tuple[str, ...]]]:
    """The seeds the runs vary, as (name, attributes) — seeds equal in every run are one factor (``data_seeds:
    same`` makes "init + data order")."""
    varied = [a for a in FACTORS if len({getattr(run, a) for run in runs} - {None}) > 1]
    factors: list[tuple[str, tuple[str, ...]]] = []
    for attribute in varied:
        for i, (name, members) in enumerate(factors):
            if all(getattr(run, attribute) == getattr(run, members[0]) for run in runs):
                factors[i] = (f"{name} + {FACTORS[attribute]}", (*members, attribute))
                break
        else:
            factors.append((FACTORS[attribute], (attribute,)))
    return factors


def _variance(runs: Sequence[RunRecord]) -> VarianceComponents | None:
    """The variance shares of the crossed seeds, when the runs fill their whole grid; else ``None``."""
    factors = variance_factors(runs)
    if len(factors) < 2:
        return None
    observations = [
        (tuple(getattr(run, members[0]) for _, members in factors), float(run.main_metric)) for run in runs
    ]
    try:
        return variance_components(observations, [name for name, _ in factors])
    except ValueError:  # an incomplete grid (runs still to run, errors), or no residual: no decomposition yet
        return None


def _churn(runs: Sequence[RunRecord], split: str | None, regression: bool) -> Churn | None:
    rows = [run.predictions[split] for run in runs if split in run.predictions]
    if len(rows) < 2 or len({len(row) for row in rows}) > 1:
        return None
    return pairwise_churn(rows, regression=regression)


def _adjusted(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons of one task with each test's p-values Holm-adjusted over the recipes compared."""
    columns = {test: holm([getattr(c, test) for c in comparisons]) for test in _TESTS}
    return [
        replace(c, comparisons=len(comparisons), **{f"{test}_holm": columns[test][i] for test in _TESTS})
        for i, c in enumerate(comparisons)
    ]


def summarize(
    runs: Sequence[RunRecord],
    *,
    baseline: str,
    recipes: Sequence[str] = (),
    tasks: Sequence[str] = (),
    n_resamples: int = 9999,
    target_score: float | None = None,
) -> list[GroupSummary]:
    """Describe every task × recipe of ``runs`` and compare each recipe with ``baseline`` on the same task.

    ``recipes`` and ``tasks`` give the order of the rows (the study's order); groups not listed follow. Every
    completed run counts (see the module docstring). ``target_score``: the score whose expected best of n runs
    is asked for (:func:`~.expected_max.runs_to_reach`).
    """
    summaries = []
    for task in order_by([run.task for run in runs], tasks):
        task_runs = [run for run in runs if run.task == task]
        completed = [run for run in task_runs if run.status == COMPLETED and score_of(run) is not None]
        base_values, base_failed = _scores([run for run in completed if run.recipe == baseline])
        constant = constant_baseline_of(completed)
        groups = [
            _group(
                task,
                recipe,
                [run for run in completed if run.recipe == recipe],
                [run for run in task_runs if run.recipe == recipe],
                constant_baseline=constant,
                baseline=baseline,
                against=(base_values, base_failed),
                n_resamples=n_resamples,
                target_score=target_score,
            )
            for recipe in order_by([run.recipe for run in task_runs], recipes)
        ]
        compared = [g for g in groups if g.comparison is not None]
        adjusted = iter(_adjusted([g.comparison for g in compared]))
        summaries += [g if g.comparison is None else replace(g, comparison=next(adjusted)) for g in groups]
    return summaries


def _scores(group: Sequence[RunRecord]) -> tuple[list[float], list[bool]]:
    return [float(score_of(run)) for run in group], [bool(run.failed_run) for run in group]


def _group(
    task: str,
    recipe: str,
    group: list[RunRecord],
    recipe_runs: list[RunRecord],
    *,
    constant_baseline: float | None,
    baseline: str,
    against: tuple[list[float], list[bool]],
    n_resamples: int,
    target_score: float | None,
) -> GroupSummary:
    """One task × recipe's summary from its completed runs ``group`` (all its runs: ``recipe_runs``)."""
    values, failed = _scores(group)
    metric = next((run.main_metric_name for run in group), None)
    split = next((run.main_metric_split for run in group), None)
    curve = expected_max_curve(values, n_resamples=min(n_resamples, 2000)) if values else None
    description = describe(values, failed, n_resamples=n_resamples)
    return GroupSummary(
        task=task,
        recipe=recipe,
        metric=metric,
        split=split,
        constant_baseline=constant_baseline,
        baseline_recipe=baseline,
        description=description,
        comparison=None if recipe == baseline or not against[0] else compare(values, failed, *against),
        errors=sum(run.status in (ERROR, CRASHED) for run in recipe_runs),
        unfinished=sum(run.status not in (COMPLETED, ERROR, CRASHED) for run in recipe_runs),
        expected_max=curve,
        runs_to_target=None if curve is None or target_score is None else runs_to_reach(curve, target_score),
        churn=_churn(group, split, metric in ("pearson", "spearmanr")),
        pruned=sum(run.pruned for run in group),
        compute_s=float(sum(run.wall_time_s or 0.0 for run in group)),
        variance=_variance(group),
        success_within=success_within(description.failed_runs, description.n, description.n)
        if description.n
        else None,
        runs_for_success=runs_for_success(description.failed_runs, description.n)
        if description.n
        else (None, None),
        noise_floor=_noise_floor(group, values),
        unscored=sum(run.main_metric is None or not math.isfinite(run.main_metric) for run in group),
    )


def _noise_floor(group: Sequence[RunRecord], values: Sequence[float]) -> NoiseFloor | None:
    """The seed-to-seed spread of ``values`` against the dev-set noise of one run's score: the run with the
    median score, its predictions resampled over the dev examples (accuracy without stored labels: the
    binomial standard deviation, which that bootstrap equals)."""
    if len(values) < 2:
        return None
    run = group[int(np.argsort(values)[len(values) // 2])]
    split, metric = run.main_metric_split, run.main_metric_name
    predictions, labels = run.predictions.get(split), run.labels.get(split)
    if predictions and labels and len(predictions) == len(labels) and run.main_metric is not None:
        from ...tasks.metrics import METRICS  # the task's metric functions, imported only when needed

        floor = bootstrap_metric_std(predictions, labels, METRICS[metric])
    elif metric == "accuracy" and predictions and run.main_metric is not None:
        floor = accuracy_std(run.main_metric, len(predictions))
    else:
        return None
    return compare_to_floor(float(np.std(values, ddof=1)), floor, len(values))
