"""The study's table: per task × recipe, the distribution of final scores and the tests against the baseline.

Written twice from the same numbers: ``summary.md`` for people (one section per task, the plots linked
beneath) and ``summary.csv`` for programs (one row per task × recipe, every number, no rounding). Only
*completed* runs enter the statistics; runs that ended in an error or are still to run are counted beside
them, so that an unfinished study cannot pass for a finished one.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .stats import Comparison, Description, compare, describe
from .store import COMPLETED, CRASHED, ERROR, RunRecord

__all__ = ["CSV_COLUMNS", "GroupSummary", "render_markdown", "summarize", "write_csv", "write_report"]


@dataclass(frozen=True)
class GroupSummary:
    """One task × recipe: its description, its comparison with the baseline recipe, its unfinished runs."""

    task: str
    recipe: str
    metric: str | None
    split: str | None
    majority_baseline: float | None
    baseline_recipe: str
    description: Description
    comparison: Comparison | None  # None for the baseline recipe itself
    errors: int
    unfinished: int


CSV_COLUMNS = [
    "task",
    "recipe",
    "metric",
    "split",
    "majority_baseline",
    "n",
    "mean",
    "std",
    "median",
    "min",
    "max",
    "failed_runs",
    "ci95_low",
    "ci95_high",
    "errors",
    "unfinished",
    "baseline_recipe",
    "mean_difference",
    "std_ratio",
    "brown_forsythe_statistic",
    "brown_forsythe_p",
    "mann_whitney_u",
    "mann_whitney_p",
    "fisher_odds_ratio",
    "fisher_p",
]


def _order(names: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``names`` in the ``preferred`` order, any others after them in order of appearance."""
    present = list(dict.fromkeys(names))
    return [name for name in preferred if name in present] + [
        name for name in present if name not in preferred
    ]


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def summarize(
    runs: Sequence[RunRecord],
    *,
    baseline: str,
    recipes: Sequence[str] = (),
    tasks: Sequence[str] = (),
    n_resamples: int = 9999,
) -> list[GroupSummary]:
    """Describe every task × recipe of ``runs`` and compare each recipe with ``baseline`` on the same task.

    ``recipes`` and ``tasks`` give the order of the rows (the study's order); groups not listed follow. A
    completed run without a final main metric (``results.json`` writes a non-finite value as null) has no
    score to describe and is left out.
    """
    summaries = []
    for task in _order([run.task for run in runs], tasks):
        task_runs = [run for run in runs if run.task == task]
        completed = [run for run in task_runs if run.status == COMPLETED and run.main_metric is not None]
        metric = next((run.main_metric_name for run in completed), None)
        split = next((run.main_metric_split for run in completed), None)
        majority = _median([run.majority_baseline for run in completed if run.majority_baseline is not None])

        def scores(recipe: str, completed: list[RunRecord] = completed) -> tuple[list[float], list[bool]]:
            chosen = [run for run in completed if run.recipe == recipe]
            return [float(run.main_metric) for run in chosen], [bool(run.failed_run) for run in chosen]

        base_values, base_failed = scores(baseline)
        for recipe in _order([run.recipe for run in task_runs], recipes):
            values, failed = scores(recipe)
            recipe_runs = [run for run in task_runs if run.recipe == recipe]
            summaries.append(
                GroupSummary(
                    task=task,
                    recipe=recipe,
                    metric=metric,
                    split=split,
                    majority_baseline=majority,
                    baseline_recipe=baseline,
                    description=describe(values, failed, n_resamples=n_resamples),
                    comparison=None
                    if recipe == baseline
                    else compare(values, failed, base_values, base_failed),
                    errors=sum(run.status in (ERROR, CRASHED) for run in recipe_runs),
                    unfinished=sum(run.status not in (COMPLETED, ERROR, CRASHED) for run in recipe_runs),
                )
            )
    return summaries


def _csv_value(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def summary_row(summary: GroupSummary) -> dict[str, object]:
    """One CSV row (keys: :data:`CSV_COLUMNS`)."""
    description = summary.description
    row: dict[str, object] = {
        "task": summary.task,
        "recipe": summary.recipe,
        "metric": summary.metric,
        "split": summary.split,
        "majority_baseline": summary.majority_baseline,
        "n": description.n,
        "mean": description.mean,
        "std": description.std,
        "median": description.median,
        "min": description.minimum,
        "max": description.maximum,
        "failed_runs": description.failed_runs,
        "ci95_low": description.ci_low,
        "ci95_high": description.ci_high,
        "errors": summary.errors,
        "unfinished": summary.unfinished,
        "baseline_recipe": summary.baseline_recipe,
    }
    comparison = asdict(summary.comparison) if summary.comparison else {}
    for column in CSV_COLUMNS[CSV_COLUMNS.index("mean_difference") :]:
        row[column] = comparison.get(column)
    return {column: _csv_value(row[column]) for column in CSV_COLUMNS}


def write_csv(summaries: Sequence[GroupSummary], path: str | Path) -> Path:
    """Write ``summary.csv``: one row per task × recipe, every number unrounded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(summary_row(summary) for summary in summaries)
    return path


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def render_markdown(
    summaries: Sequence[GroupSummary],
    *,
    title: str,
    counts_line: str = "",
    plots: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> str:
    """The Markdown report: per task, the description table, the tests table and the plots (``plots[task]``
    is a list of (caption, relative path))."""
    lines = [f"# Seed study `{title}`", ""]
    if counts_line:
        lines += [counts_line, ""]
    lines += [
        "Statistics over the completed runs' final main metric. A **failed run** ends no better than (≤) the "
        "majority-class baseline (Mosbach et al. 2021). std: sample standard deviation; 95 % CI: bootstrap "
        "(BCa) interval of the mean. Tests against the baseline recipe: Brown–Forsythe (spread), "
        "Mann–Whitney U (location), Fisher's exact test (failed-run counts); p-values two-sided, "
        "uncorrected for multiple comparisons.",
        "",
    ]
    for task in list(dict.fromkeys(summary.task for summary in summaries)):
        group = [summary for summary in summaries if summary.task == task]
        first = group[0]
        heading = f"## {task}"
        if first.metric:
            heading += f": {first.metric} on {first.split}"
        if first.majority_baseline is not None:
            heading += f" (majority-class baseline {_number(first.majority_baseline)})"
        lines += [heading, ""]
        lines += [
            "| recipe | n | mean | std | median | min | max | failed runs | 95 % CI of the mean | errors | to run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
        ]
        for summary in group:
            d = summary.description
            name = f"{summary.recipe} (baseline)" if summary.comparison is None else summary.recipe
            interval = "–" if math.isnan(d.ci_low) else f"[{_number(d.ci_low)}, {_number(d.ci_high)}]"
            lines.append(
                f"| {name} | {d.n} | {_number(d.mean)} | {_number(d.std)} | {_number(d.median)} | "
                f"{_number(d.minimum)} | {_number(d.maximum)} | {d.failed_runs} | {interval} | "
                f"{summary.errors} | {summary.unfinished} |"
            )
        compared = [summary for summary in group if summary.comparison is not None]
        if compared:
            base = next((s for s in group if s.comparison is None), None)
            base_failed = f"{base.description.failed_runs}/{base.description.n}" if base else "–"
            lines += [
                "",
                f"| vs {first.baseline_recipe} | Δ mean | std ratio | Brown–Forsythe p | Mann–Whitney U | "
                "Mann–Whitney p | failed runs | Fisher p |",
                "|---|---:|---:|---:|---:|---:|---|---:|",
            ]
            for summary in compared:
                c, d = summary.comparison, summary.description
                assert c is not None
                difference = "–" if math.isnan(c.mean_difference) else f"{c.mean_difference:+.4f}"
                lines.append(
                    f"| {summary.recipe} | {difference} | {_number(c.std_ratio, 2)} | {_p(c.brown_forsythe_p)} | "
                    f"{_number(c.mann_whitney_u, 1)} | {_p(c.mann_whitney_p)} | "
                    f"{d.failed_runs}/{d.n} vs {base_failed} | {_p(c.fisher_p)} |"
                )
        for caption, path in (plots or {}).get(task, ()):
            lines += ["", f"![{caption}]({path})"]
        lines.append("")
    return "\n".join(lines)


def write_report(
    runs: Sequence[RunRecord],
    output_dir: str | Path,
    *,
    title: str,
    baseline: str,
    recipes: Sequence[str] = (),
    tasks: Sequence[str] = (),
    counts_line: str = "",
    plots: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    n_resamples: int = 9999,
) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``summary.csv`` into ``output_dir``; returns their paths."""
    output_dir = Path(output_dir)
    summaries = summarize(runs, baseline=baseline, recipes=recipes, tasks=tasks, n_resamples=n_resamples)
    markdown = output_dir / "summary.md"
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(
        render_markdown(summaries, title=title, counts_line=counts_line, plots=plots), encoding="utf-8"
    )
    return markdown, write_csv(summaries, output_dir / "summary.csv")
