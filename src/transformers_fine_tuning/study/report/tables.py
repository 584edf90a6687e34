"""The study's numbers as files for programs: ``summary.csv`` (one row per task × recipe, every number from
:mod:`..analysis.summary`, no rounding) and ``expected_max.csv`` (the whole expected-best curves with their bands)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from ...atomic import write_text_atomic
from ..analysis.summary import GroupSummary

__all__ = ["CSV_COLUMNS", "summary_row", "write_csv", "write_expected_max_csv"]

CSV_COLUMNS = [
    "task",
    "recipe",
    "metric",
    "split",
    "constant_baseline",
    "n",
    "mean",
    "std",
    "std_not_failed",
    "median",
    "min",
    "max",
    "failed_runs",
    "pruned",
    "degenerate",
    "zero_spread",
    "unscored",
    "failure_rate_low",
    "failure_rate_high",
    "ci95_low",
    "ci95_high",
    "expected_max_1",
    "expected_max_n",
    "expected_max_n_low",
    "expected_max_n_high",
    "runs_to_target",
    "success_within_n",
    "success_within_n_low",
    "success_within_n_high",
    "runs_for_95_success",
    "runs_for_95_success_pessimistic",
    "noise_floor_std",
    "noise_floor_ratio",
    "noise_floor_p",
    "churn",
    "churn_low",
    "churn_high",
    "compute_s",
    "compute_per_success_s",
    "variance_shares",
    "errors",
    "unfinished",
    "baseline_recipe",
    "mean_difference",
    "std_ratio",
    "brown_forsythe_statistic",
    "brown_forsythe_p",
    "brown_forsythe_p_holm",
    "mann_whitney_u",
    "mann_whitney_p",
    "mann_whitney_p_holm",
    "fisher_odds_ratio",
    "fisher_p",
    "fisher_p_holm",
    "comparisons",
    "direction",
    "superiority",
    "superiority_low",
    "superiority_high",
    "shift",
    "shift_low",
    "shift_high",
    "mean_difference_low",
    "mean_difference_high",
    "expected_max_n",
    "expected_max_difference",
    "expected_max_difference_low",
    "expected_max_difference_high",
    "aso_epsilon",
    "failure_difference",
    "failure_difference_low",
    "failure_difference_high",
    "seeds_for_failure_rates",
    "seeds_for_shift",
]


def _csv_value(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def summary_row(summary: GroupSummary) -> dict[str, object]:
    """One CSV row (keys: :data:`CSV_COLUMNS`)."""
    d, curve, churn, variance = summary.description, summary.expected_max, summary.churn, summary.variance
    row: dict[str, object] = {
        "task": summary.task,
        "recipe": summary.recipe,
        "metric": summary.metric,
        "split": summary.split,
        "constant_baseline": summary.constant_baseline,
        "n": d.n,
        "mean": d.mean,
        "std": d.std,
        "std_not_failed": d.std_not_failed,
        "median": d.median,
        "min": d.minimum,
        "max": d.maximum,
        "failed_runs": d.failed_runs,
        "pruned": summary.pruned,
        "degenerate": d.degenerate if d.n else None,
        "zero_spread": d.zero_spread if d.n else None,
        "unscored": summary.unscored,
        "failure_rate_low": d.failure_rate_low,
        "failure_rate_high": d.failure_rate_high,
        "ci95_low": d.ci_low,
        "ci95_high": d.ci_high,
        "expected_max_1": curve.mean[0] if curve and curve.n else None,
        "expected_max_n": curve.mean[-1] if curve and curve.n else None,
        "expected_max_n_low": curve.low[-1] if curve and curve.n else None,
        "expected_max_n_high": curve.high[-1] if curve and curve.n else None,
        "runs_to_target": summary.runs_to_target,
        "success_within_n": summary.success_within.estimate if summary.success_within else None,
        "success_within_n_low": summary.success_within.low if summary.success_within else None,
        "success_within_n_high": summary.success_within.high if summary.success_within else None,
        "runs_for_95_success": summary.runs_for_success[0],
        "runs_for_95_success_pessimistic": summary.runs_for_success[1],
        "noise_floor_std": summary.noise_floor.floor_std if summary.noise_floor else None,
        "noise_floor_ratio": summary.noise_floor.ratio if summary.noise_floor else None,
        "noise_floor_p": summary.noise_floor.p_value if summary.noise_floor else None,
        "churn": churn.mean if churn else None,
        "churn_low": churn.low if churn else None,
        "churn_high": churn.high if churn else None,
        "compute_s": summary.compute_s,
        "compute_per_success_s": summary.compute_per_success_s,
        "variance_shares": ";".join(f"{name}={share}" for name, share in variance.shares.items())
        if variance
        else None,
        "errors": summary.errors,
        "unfinished": summary.unfinished,
        "baseline_recipe": summary.baseline_recipe,
    }
    comparison = asdict(summary.comparison) if summary.comparison else {}
    for column in CSV_COLUMNS[CSV_COLUMNS.index("mean_difference") :]:
        row[column] = comparison.get(column)
    return {column: _csv_value(row[column]) for column in CSV_COLUMNS}


def _write_rows(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> Path:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, text.getvalue())


def write_csv(summaries: Sequence[GroupSummary], path: str | Path) -> Path:
    """Write ``summary.csv``: one row per task × recipe, every number unrounded."""
    return _write_rows(Path(path), CSV_COLUMNS, [summary_row(summary) for summary in summaries])


def write_expected_max_csv(summaries: Sequence[GroupSummary], path: str | Path) -> Path:
    """Write ``expected_max.csv``: the expected best of n runs for every n, with its bootstrap band."""
    rows = [
        {
            "task": s.task,
            "recipe": s.recipe,
            "n": n,
            "expected_max": mean,
            "low": _csv_value(low),
            "high": _csv_value(high),
        }
        for s in summaries
        if s.expected_max is not None
        for n, mean, low, high in zip(
            s.expected_max.n, s.expected_max.mean, s.expected_max.low, s.expected_max.high, strict=True
        )
    ]
    return _write_rows(Path(path), ["task", "recipe", "n", "expected_max", "low", "high"], rows)
