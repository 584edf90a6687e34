"""The study's table: per task × recipe, the distribution of final scores, what n runs buy, and the tests.

Written twice from the same numbers: ``summary.md`` for people (a verdict line per task, then per task the
distribution, the comparison with the baseline recipe, the expected best of n runs with churn and compute, and —
for crossed seeds — where the variance comes from; the plots linked beneath) and ``summary.csv`` for programs
(one row per task × recipe, every number, no rounding), with the whole expected-best curves in
``expected_max.csv``. Only *completed* runs enter the statistics; runs that ended in an error or are still to
run are counted beside them, so that an unfinished study cannot pass for a finished one.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from .churn import Churn, pairwise_churn
from .costs import StudyCosts, render_costs, study_costs
from .expected_max import ExpectedMax, expected_max_curve, runs_to_reach
from .stats import Comparison, Description, compare, describe, holm
from .store import COMPLETED, CRASHED, ERROR, RunRecord
from .variance import VarianceComponents, variance_components

__all__ = [
    "CSV_COLUMNS",
    "GroupSummary",
    "majority_baseline_of",
    "order_by",
    "render_markdown",
    "summarize",
    "variance_factors",
    "verdicts",
    "write_csv",
    "write_report",
]

FACTORS = {"seed": "init", "data_seed": "data order", "subset_seed": "subset", "dropout_seed": "dropout"}
"""The seeds a study can cross (:mod:`..seeds`), as the variance table names them."""


@dataclass(frozen=True)
class GroupSummary:
    """One task × recipe: its description, its comparison with the baseline recipe, what n runs buy, its
    churn and compute, the variance shares of crossed seeds, its unfinished runs."""

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
    expected_max: ExpectedMax | None = None
    runs_to_target: int | None = None
    churn: Churn | None = None
    pruned: int = 0
    compute_s: float = 0.0
    variance: VarianceComponents | None = None

    @property
    def compute_per_success_s(self) -> float | None:
        """Compute spent (all completed runs' wall time) per run that did not fail."""
        successes = self.description.n - self.description.failed_runs
        return self.compute_s / successes if successes else None


CSV_COLUMNS = [
    "task",
    "recipe",
    "metric",
    "split",
    "majority_baseline",
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
    "ci95_low",
    "ci95_high",
    "expected_max_1",
    "expected_max_n",
    "expected_max_n_low",
    "expected_max_n_high",
    "runs_to_target",
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
]

_TESTS = ("brown_forsythe_p", "mann_whitney_p", "fisher_p")


def order_by(names: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``names`` (once each) in the ``preferred`` order, any others after them in order of appearance."""
    present = list(dict.fromkeys(names))
    return [name for name in preferred if name in present] + [
        name for name in present if name not in preferred
    ]


def majority_baseline_of(runs: Sequence[RunRecord]) -> float | None:
    """The majority-class baseline of a task's runs (their median: runs on other subsets may differ)."""
    values = [run.majority_baseline for run in runs if run.majority_baseline is not None]
    return float(np.median(values)) if values else None


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

    ``recipes`` and ``tasks`` give the order of the rows (the study's order); groups not listed follow. A
    completed run without a final main metric (``results.json`` writes a non-finite value as null) has no
    score to describe and is left out. ``target_score``: the score whose expected best of n runs is asked for
    (:func:`~.expected_max.runs_to_reach`).
    """
    summaries = []
    for task in order_by([run.task for run in runs], tasks):
        task_runs = [run for run in runs if run.task == task]
        completed = [run for run in task_runs if run.status == COMPLETED and run.main_metric is not None]
        metric = next((run.main_metric_name for run in completed), None)
        split = next((run.main_metric_split for run in completed), None)
        majority = majority_baseline_of(completed)
        regression = metric in ("pearson", "spearmanr")

        def chosen(recipe: str, completed: list[RunRecord] = completed) -> list[RunRecord]:
            return [run for run in completed if run.recipe == recipe]

        def scores(group: list[RunRecord]) -> tuple[list[float], list[bool]]:
            return [float(run.main_metric) for run in group], [bool(run.failed_run) for run in group]

        base_values, base_failed = scores(chosen(baseline))
        groups = []
        for recipe in order_by([run.recipe for run in task_runs], recipes):
            group = chosen(recipe)
            values, failed = scores(group)
            recipe_runs = [run for run in task_runs if run.recipe == recipe]
            curve = expected_max_curve(values, n_resamples=min(n_resamples, 2000)) if values else None
            groups.append(
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
                    expected_max=curve,
                    runs_to_target=None
                    if curve is None or target_score is None
                    else runs_to_reach(curve, target_score),
                    churn=_churn(group, split, regression),
                    pruned=sum(run.pruned for run in group),
                    compute_s=float(sum(run.wall_time_s or 0.0 for run in group)),
                    variance=_variance(group),
                )
            )
        compared = [g for g in groups if g.comparison is not None]
        adjusted = iter(_adjusted([g.comparison for g in compared]))
        summaries += [g if g.comparison is None else replace(g, comparison=next(adjusted)) for g in groups]
    return summaries


# -- the verdict ---------------------------------------------------------------------------------------------


def _best(group: Sequence[GroupSummary], n: int) -> GroupSummary | None:
    candidates = [g for g in group if g.expected_max is not None and n in g.expected_max.n]
    return max(candidates, key=lambda g: g.expected_max.at(n), default=None)


def verdicts(summaries: Sequence[GroupSummary]) -> dict[str, str]:
    """Per task, one sentence: the recipe with the best expected score at the study's n and at n = 1, and how
    sure the tests are — nothing stronger than the numbers allow."""
    lines = {}
    for task in dict.fromkeys(s.task for s in summaries):
        group = [s for s in summaries if s.task == task and s.description.n]
        if not group:
            lines[task] = "no completed runs yet."
            continue
        n = min(s.description.n for s in group)
        if n < 2 or len(group) < 2:
            lines[task] = f"too few runs for a verdict ({n} per recipe)."
            continue
        usable = [s for s in group if not s.description.degenerate]
        if not usable:
            lines[task] = "every recipe failed (almost) every run: no recipe to recommend."
            continue
        at_n, at_1 = _best(usable, n), _best(usable, 1)
        assert at_n is not None and at_1 is not None
        text = (
            f"best expected score of the best of {n} runs: **{at_n.recipe}** ({_number(at_n.expected_max.at(n))}); "
            f"of a single run: **{at_1.recipe}** ({_number(at_1.expected_max.at(1))})"
        )
        baseline = at_1.baseline_recipe
        if at_1.comparison is None:
            text += f" — the baseline {baseline} itself."
        else:
            p, adjusted = at_1.comparison.mann_whitney_p, at_1.comparison.mann_whitney_p_holm
            sure = (
                f"its scores are higher than {baseline}'s beyond chance (Mann–Whitney p = {_p(p)}, Holm {_p(adjusted)} "
                f"over {at_1.comparison.comparisons})"
                if adjusted < 0.05 and at_1.comparison.mean_difference > 0
                else f"not distinguishable from {baseline} (Mann–Whitney p = {_p(p)}, Holm {_p(adjusted)} over "
                f"{at_1.comparison.comparisons})"
            )
            text += f"; {sure}."
        if n < 10:
            text += f" With {n} runs per recipe, read this as a hint."
        degenerate = [s.recipe for s in group if s.description.degenerate]
        if degenerate:
            text += f" Left out as degenerate (almost every run failed): {', '.join(degenerate)}."
        lines[task] = text
    return lines


# -- writing ---------------------------------------------------------------------------------------------------


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
        "majority_baseline": summary.majority_baseline,
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
        "ci95_low": d.ci_low,
        "ci95_high": d.ci_high,
        "expected_max_1": curve.mean[0] if curve and curve.n else None,
        "expected_max_n": curve.mean[-1] if curve and curve.n else None,
        "expected_max_n_low": curve.low[-1] if curve and curve.n else None,
        "expected_max_n_high": curve.high[-1] if curve and curve.n else None,
        "runs_to_target": summary.runs_to_target,
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


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _band(low: float, high: float, digits: int = 4) -> str:
    return "–" if math.isnan(low) else f"[{_number(low, digits)}, {_number(high, digits)}]"


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def _shown_counts(n: int) -> list[int]:
    return [k for k in (1, 3, 5, 10) if k < n] + [n]


def _task_sections(
    group: Sequence[GroupSummary], plots: Sequence[tuple[str, str]], target: float | None
) -> list[str]:
    first = group[0]
    heading = f"## {first.task}"
    if first.metric:
        heading += f": {first.metric} on {first.split}"
    if first.majority_baseline is not None:
        heading += f" (majority-class baseline {_number(first.majority_baseline)})"
    lines = [heading, ""]
    lines += [
        "| recipe | n | mean | std | std (not failed) | median | min | max | failed runs | 95 % CI of the mean "
        "| errors | to run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for summary in group:
        d = summary.description
        name = f"{summary.recipe} (baseline)" if summary.comparison is None else summary.recipe
        if d.degenerate and d.n:
            name += " ⚠"
        failed = f"{d.failed_runs}" + (f" ({summary.pruned} pruned)" if summary.pruned else "")
        lines.append(
            f"| {name} | {d.n} | {_number(d.mean)} | {_number(d.std)} | {_number(d.std_not_failed)} | "
            f"{_number(d.median)} | {_number(d.minimum)} | {_number(d.maximum)} | {failed} | "
            f"{_band(d.ci_low, d.ci_high)} | {summary.errors} | {summary.unfinished} |"
        )
    degenerate = [s for s in group if s.description.degenerate and s.description.n]
    if degenerate:
        lines += [
            "",
            "⚠ degenerate: "
            + "; ".join(
                f"{s.recipe} failed {s.description.failed_runs} of {s.description.n} runs" for s in degenerate
            )
            + " — fewer than two runs that did not fail, or almost all failed: no spread to compare; it is "
            "never counted as more stable.",
        ]

    compared = [summary for summary in group if summary.comparison is not None]
    if compared:
        base = next((s for s in group if s.comparison is None), None)
        base_failed = f"{base.description.failed_runs}/{base.description.n}" if base else "–"
        m = compared[0].comparison.comparisons
        lines += [
            "",
            f"| vs {first.baseline_recipe} | Δ mean | std ratio (not failed) | Brown–Forsythe p (Holm) | "
            "Mann–Whitney U | Mann–Whitney p (Holm) | failed runs | Fisher p (Holm) |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for summary in compared:
            c, d = summary.comparison, summary.description
            assert c is not None
            difference = "–" if math.isnan(c.mean_difference) else f"{c.mean_difference:+.4f}"
            ratio = "– (degenerate)" if d.degenerate else _number(c.std_ratio, 2)
            lines.append(
                f"| {summary.recipe} | {difference} | {ratio} | {_p(c.brown_forsythe_p)} ({_p(c.brown_forsythe_p_holm)}) | "
                f"{_number(c.mann_whitney_u, 1)} | {_p(c.mann_whitney_p)} ({_p(c.mann_whitney_p_holm)}) | "
                f"{d.failed_runs}/{d.n} vs {base_failed} | {_p(c.fisher_p)} ({_p(c.fisher_p_holm)}) |"
            )
        lines += [
            "",
            f"Holm-adjusted over the {m} recipe{'s' if m != 1 else ''} compared with {first.baseline_recipe}, per test.",
        ]

    curves = [s for s in group if s.expected_max is not None and s.expected_max.n]
    if curves:
        n = max(len(s.expected_max.n) for s in curves)
        counts = _shown_counts(n)
        header = " | ".join(f"E[best of {k}]" for k in counts)
        reach_header = "" if target is None else f" | runs to reach {_number(target)}"
        lines += [
            "",
            f"| recipe | {header}{reach_header} | churn [95 % CI] | compute | compute per success |",
            "|---|" + "---:|" * len(counts) + ("---:|" if target is not None else "") + "---|---:|---:|",
        ]
        for s in curves:
            cells = []
            for k in counts:
                if k in s.expected_max.n:
                    i = s.expected_max.n.index(k)
                    value = _number(s.expected_max.mean[i])
                    cells.append(
                        value
                        if k == 1
                        else f"{value} {_band(s.expected_max.low[i], s.expected_max.high[i], 3)}"
                    )
                else:
                    cells.append("–")
            reach = ""
            if target is not None:
                reach = (
                    f" | {s.runs_to_target if s.runs_to_target is not None else f'> {len(s.expected_max.n)}'}"
                )
            churn = (
                "–"
                if s.churn is None
                else f"{_number(s.churn.mean, 3)} {_band(s.churn.low, s.churn.high, 3)}"
            )
            lines.append(
                f"| {s.recipe} | {' | '.join(cells)}{reach} | {churn} | {_hours(s.compute_s)} | "
                f"{_hours(s.compute_per_success_s)} |"
            )
        lines += [
            "",
            "E[best of n]: the expected best final score of n runs (unbiased estimator, Dodge et al. 2021), with "
            "a bootstrap 95 % band. Churn: the mean share of dev examples two runs of the recipe classify "
            "differently (regression: mean absolute difference of the scores). Compute: the completed runs' wall time; "
            "per success, divided by the runs that did not fail.",
        ]

    crossed = [s for s in group if s.variance is not None]
    if crossed:
        names = list(crossed[0].variance.shares)
        lines += [
            "",
            "| recipe | runs | levels | " + " | ".join(f"{name} share [95 % CI]" for name in names) + " |",
            "|---|---:|---|" + "---|" * len(names),
        ]
        for s in crossed:
            v = s.variance
            assert v is not None
            shares = " | ".join(
                f"{_number(v.shares[name], 2)} {_band(*v.intervals[name], 2)}" for name in names
            )
            levels = " × ".join(f"{v.levels[name]} {name}" for name in v.factors)
            lines.append(f"| {s.recipe} | {v.runs} | {levels} | {shares} |")
        lines += [
            "",
            "Shares of the variance of the final score due to each seed: crossed random effects, method of "
            "moments, multi-way bootstrap intervals. A share from k seeds rests on k − 1 degrees of freedom: with "
            "fewer than 5 seeds per factor it means little.",
        ]
    for caption, path in plots:
        lines += ["", f"![{caption}]({path})"]
    lines.append("")
    return lines


def render_markdown(
    summaries: Sequence[GroupSummary],
    *,
    title: str,
    counts_line: str = "",
    plots: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    target_score: float | None = None,
    costs: StudyCosts | None = None,
) -> str:
    """The Markdown report: the verdicts, then per task its tables and the plots (``plots[task]`` is a list of
    (caption, relative path)), then where the study's time went (``costs``)."""
    lines = [f"# Seed study `{title}`", ""]
    if counts_line:
        lines += [counts_line, ""]
    for task, verdict in verdicts(summaries).items():
        lines += [f"**Verdict, {task}:** {verdict}", ""]
    lines += [
        "Statistics over the completed runs' final main metric. A **failed run** ends no better than (≤) the "
        "majority-class baseline (Mosbach et al. 2021), or was pruned or stopped on a non-finite loss. std: "
        "sample standard deviation, of all runs and of the runs that did not fail; 95 % CI: bootstrap (BCa) "
        "interval of the mean. Tests against the baseline recipe: Brown–Forsythe (spread, among the runs that "
        "did not fail), Mann–Whitney U (location), Fisher's exact test (failed-run counts); p-values two-sided, "
        "with Holm-adjusted ones in parentheses.",
        "",
    ]
    for task in list(dict.fromkeys(summary.task for summary in summaries)):
        group = [summary for summary in summaries if summary.task == task]
        lines += _task_sections(group, (plots or {}).get(task, ()), target_score)
    if costs is not None:
        lines += render_costs(costs)
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
    target_score: float | None = None,
) -> tuple[Path, Path]:
    """Write ``summary.md``, ``summary.csv`` and ``expected_max.csv`` into ``output_dir``; returns the first two."""
    output_dir = Path(output_dir)
    summaries = summarize(
        runs,
        baseline=baseline,
        recipes=recipes,
        tasks=tasks,
        n_resamples=n_resamples,
        target_score=target_score,
    )
    markdown = write_text_atomic(
        output_dir / "summary.md",
        render_markdown(
            summaries,
            title=title,
            counts_line=counts_line,
            plots=plots,
            target_score=target_score,
            costs=study_costs(runs),
        ),
    )
    write_expected_max_csv(summaries, output_dir / "expected_max.csv")
    return markdown, write_csv(summaries, output_dir / "summary.csv")
