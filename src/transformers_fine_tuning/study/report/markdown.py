"""``summary.md``: the verdicts, then per task its tables, the plots and where the study's time went.

Rendering only: every number comes from :mod:`..analysis.summary` (and :mod:`.verdict` for the sentences); nothing here
computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..analysis.costs import StudyCosts
from ..run.progress import format_duration
from .formatting import band, number, p_value
from .verdict import HINT_BELOW, verdicts

if TYPE_CHECKING:
    from ..analysis.summary import GroupSummary

__all__ = ["render", "render_costs"]

EXPLANATION = (
    "Statistics over every completed run's final main metric (a run without a finite score counts at the best "
    "constant predictor's). A **failed run** ends at or below the best constant predictor's score on the "
    "evaluated split (Mosbach et al. 2021: accuracy, the largest class share), or answered (almost) one class, "
    "or was pruned or stopped on a non-finite value. std: sample standard deviation, of all runs and of the runs "
    "that did not fail; 95 % CI: bootstrap (BCa) interval of the mean (†: fewer than 10 runs, where it covers "
    "less than it says — about 81 % at 4 runs); failed runs with their Clopper–Pearson 95 % interval. Tests "
    "against the baseline recipe: P(recipe > baseline) and the Hodges–Lehmann shift with their intervals and "
    "Mann–Whitney U (location, direction from U), Fisher's exact test and Newcombe's interval (failure rates), "
    "Brown–Forsythe (spread, among the runs that did not fail); p-values two-sided, with Holm-adjusted ones "
    "in parentheses."
)


def _signed(value: float, low: float, high: float, digits: int = 4) -> str:
    return "–" if math.isnan(value) else f"{value:+.{digits}f} {band(low, high, digits)}"


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def _shown_counts(n: int) -> list[int]:
    return [k for k in (1, 3, 5, 10) if k < n] + [n]


def _heading(first: GroupSummary) -> list[str]:
    heading = f"## {first.task}"
    if first.metric:
        heading += f": {first.metric} on {first.split}"
    if first.constant_baseline is not None:
        heading += f" (best constant predictor {number(first.constant_baseline)})"
    return [heading, ""]


def _distribution(group: Sequence[GroupSummary]) -> list[str]:
    lines = [
        "| recipe | n | mean | std | std (not failed) | median | min | max | failed runs [95 % CI] | "
        "95 % CI of the mean | errors | to run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for s in group:
        d = s.description
        name = f"{s.recipe} (baseline)" if s.comparison is None else s.recipe
        name += " ⚠" if d.degenerate and d.n else ""
        name += " ≡" if d.zero_spread and not d.degenerate else ""
        failed = f"{d.failed_runs}" + (f" ({s.pruned} pruned)" if s.pruned else "")
        failed += f" {band(d.failure_rate_low, d.failure_rate_high, 2)}" if d.n else ""
        mean_ci = band(d.ci_low, d.ci_high) + (" †" if 1 < d.n < HINT_BELOW else "")
        lines.append(
            f"| {name} | {d.n}{f' ({s.unscored} unscored)' if s.unscored else ''} | {number(d.mean)} | "
            f"{number(d.std)} | {number(d.std_not_failed)} | {number(d.median)} | {number(d.minimum)} | "
            f"{number(d.maximum)} | {failed} | {mean_ci} | {s.errors} | {s.unfinished} |"
        )
    flagged = [
        s for s in group if s.description.n and (s.description.degenerate or s.description.zero_spread)
    ]
    for s in flagged:
        d = s.description
        lines += [
            "",
            f"⚠ {s.recipe}: failed {d.failed_runs} of {d.n} runs — fewer than two that did not fail, or at least "
            "80 % failed: no spread to compare; never counted as more stable."
            if d.degenerate
            else f"≡ {s.recipe}: all {d.n} runs scored the same — no spread to compare.",
        ]
    return lines


def _comparisons(group: Sequence[GroupSummary]) -> list[str]:
    compared = [s for s in group if s.comparison is not None]
    if not compared:
        return []
    base_name = compared[0].baseline_recipe
    base = next((s for s in group if s.comparison is None), None)
    base_failed = f"{base.description.failed_runs}/{base.description.n}" if base else "–"
    lines = [
        "",
        f"| vs {base_name} | P(> {base_name}) [95 % CI] | shift (Hodges–Lehmann) [95 % CI] | Δ mean [95 % CI] | "
        "Mann–Whitney p (Holm) | failed runs | Δ failure rate [95 % CI] | Fisher p (Holm) | std ratio (not "
        "failed) | Brown–Forsythe p (Holm) | ASO ε_min | runs for 80 % power: shift, failures |",
        "|---|---|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for s in compared:
        c, d = s.comparison, s.description
        assert c is not None
        ratio = (
            "– (degenerate)"
            if d.degenerate or (base and base.description.degenerate)
            else number(c.std_ratio, 2)
        )
        seeds = f"{c.seeds_for_shift or '–'}, {c.seeds_for_failure_rates or '–'}"
        lines.append(
            f"| {s.recipe} | {number(c.superiority, 2)} {band(c.superiority_low, c.superiority_high, 2)} | "
            f"{_signed(c.shift, c.shift_low, c.shift_high)} | "
            f"{_signed(c.mean_difference, c.mean_difference_low, c.mean_difference_high)} | "
            f"{p_value(c.mann_whitney_p)} ({p_value(c.mann_whitney_p_holm)}) | {d.failed_runs}/{d.n} vs {base_failed} | "
            f"{_signed(c.failure_difference, c.failure_difference_low, c.failure_difference_high, 2)} | "
            f"{p_value(c.fisher_p)} ({p_value(c.fisher_p_holm)}) | {ratio} | "
            f"{p_value(c.brown_forsythe_p)} ({p_value(c.brown_forsythe_p_holm)}) | {number(c.aso_epsilon, 2)} | {seeds} |"
        )
    m = compared[0].comparison.comparisons
    lines += [
        "",
        f"Holm-adjusted over the {m} recipe{'s' if m != 1 else ''} compared with {base_name}, per test. P(> "
        f"{base_name}): the chance that a run of the recipe scores above one of {base_name}'s (ties count half); "
        "its side of ½ is the direction the Mann–Whitney test speaks for. ASO ε_min: Almost Stochastic Order "
        "(Dror et al. 2019, deepsig), below 0.5 the recipe is almost stochastically larger. Runs for 80 % power: "
        "per recipe, to tell the observed P(>) from ½ (Noether 1987) and the observed failure rates apart, at "
        "α = 0.05.",
    ]
    return lines


def _expected_cells(s: GroupSummary, counts: Sequence[int]) -> list[str]:
    cells = []
    for k in counts:
        if k not in s.expected_max.n:
            cells.append("–")
            continue
        i = s.expected_max.n.index(k)
        value, low, high = number(s.expected_max.mean[i]), s.expected_max.low[i], s.expected_max.high[i]
        cells.append(value if k == 1 or math.isnan(low) else f"{value} {band(low, high, 3)}")
    return cells


def _what_runs_buy(group: Sequence[GroupSummary], target: float | None) -> list[str]:
    curves = [s for s in group if s.expected_max is not None and s.expected_max.n]
    if not curves:
        return []
    counts = _shown_counts(max(len(s.expected_max.n) for s in curves))
    header = " | ".join(f"E[best of {k}]" for k in counts)
    reach = "" if target is None else f" | runs to reach {number(target)}"
    lines = [
        "",
        f"| recipe | {header}{reach} | ΔE[best of n] vs baseline [95 % CI] | P(≥ 1 success in n) [95 % CI] | "
        "runs for 95 % success | churn [95 % CI] | compute | compute per success |",
        "|---|"
        + "---:|" * len(counts)
        + ("---:|" if target is not None else "")
        + "---|---|---|---|---:|---:|",
    ]
    for s in curves:
        cells = " | ".join(_expected_cells(s, counts))
        if target is not None:
            cells += (
                f" | {s.runs_to_target if s.runs_to_target is not None else f'> {len(s.expected_max.n)}'}"
            )
        c = s.comparison
        delta = (
            "–"
            if c is None
            else f"n = {c.expected_max_n}: "
            + _signed(
                c.expected_max_difference, c.expected_max_difference_low, c.expected_max_difference_high
            )
        )
        within = s.success_within
        success = (
            "–" if within is None else f"{number(within.estimate, 3)} {band(within.low, within.high, 3)}"
        )
        estimate, pessimistic = s.runs_for_success
        runs = "never" if estimate is None else f"{estimate} (pessimistic: {pessimistic or 'never'})"
        churn = "–" if s.churn is None else f"{number(s.churn.mean, 3)} {band(s.churn.low, s.churn.high, 3)}"
        lines.append(
            f"| {s.recipe} | {cells} | {delta} | {success} | {runs} | {churn} | {_hours(s.compute_s)} | "
            f"{_hours(s.compute_per_success_s)} |"
        )
    lines += [
        "",
        "E[best of n]: the expected best final score of n runs (unbiased estimator, Dodge et al. 2021), with a "
        "bootstrap 95 % band where the bootstrap can give one (none near n = N, where it would only repeat the "
        "best run). ΔE[best of n]: against the baseline, two-sample bootstrap, at the largest n it covers (n ≤ N/5 "
        "of the smaller recipe). "
        "P(≥ 1 success in n): 1 − pⁿ with p the failure rate, its band from p's Clopper–Pearson interval; runs "
        "for 95 % success: at the estimate (at the interval's pessimistic end). Churn: the mean share of dev "
        "examples two runs of the recipe classify differently (regression: mean absolute difference). Compute: "
        "the completed runs' wall time; per success, divided by the runs that did not fail.",
    ]
    return lines


def _noise_floor(group: Sequence[GroupSummary]) -> list[str]:
    floors = [s for s in group if s.noise_floor is not None]
    if not floors:
        return []
    lines = [
        "",
        "| recipe | seed-to-seed std | dev-set noise (one run, bootstrap) | ratio | p (spread > dev noise) |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in floors:
        f = s.noise_floor
        assert f is not None
        note = "" if f.exceeds else " (within the dev set's noise)"
        lines.append(
            f"| {s.recipe} | {number(f.seed_std)} | {number(f.floor_std)} | {number(f.ratio, 2)}{note} | {p_value(f.p_value)} |"
        )
    lines += [
        "",
        "Dev-set noise: the standard deviation of one run's score (the median run) over the dev examples "
        "resampled; a seed-to-seed spread not above it is instability the dev set cannot resolve. p: χ² test of "
        "the runs' variance against it (taken as known).",
    ]
    return lines


def _variance_table(group: Sequence[GroupSummary]) -> list[str]:
    crossed = [s for s in group if s.variance is not None]
    if not crossed:
        return []
    names = list(crossed[0].variance.shares)
    lines = [
        "",
        "| recipe | runs | levels | " + " | ".join(f"{name} share [95 % CI]" for name in names) + " |",
        "|---|---:|---|" + "---|" * len(names),
    ]
    for s in crossed:
        v = s.variance
        assert v is not None
        shares = " | ".join(f"{number(v.shares[name], 2)} {band(*v.intervals[name], 2)}" for name in names)
        levels = " × ".join(f"{v.levels[name]} {name}" for name in v.factors)
        lines.append(f"| {s.recipe} | {v.runs} | {levels} | {shares} |")
    lines += [
        "",
        "Shares of the variance of the final score due to each seed: crossed random effects, method of moments, "
        "multi-way bootstrap intervals. A share from k seeds rests on k − 1 degrees of freedom: with fewer than 5 "
        "seeds per factor it means little.",
    ]
    return lines


def render(
    summaries: Sequence[GroupSummary],
    *,
    title: str,
    counts_line: str = "",
    plots: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    target_score: float | None = None,
    costs: StudyCosts | None = None,
    notes: Mapping[str, str] | None = None,
) -> str:
    """The Markdown report: the verdicts, then per task its tables and the plots (``plots[task]`` is a list of
    (caption, relative path)), then where the study's time went (``costs``); ``notes[task]`` follows the task's
    verdict."""
    lines = [f"# Seed study `{title}`", ""]
    if counts_line:
        lines += [counts_line, ""]
    for task, sentence in verdicts(summaries).items():
        note = (notes or {}).get(task)
        lines += [f"**Verdict, {task}:** {sentence}{f' {note}' if note else ''}", ""]
    lines += [EXPLANATION, ""]
    for task in dict.fromkeys(s.task for s in summaries):
        group = [s for s in summaries if s.task == task]
        lines += _heading(group[0]) + _distribution(group) + _comparisons(group)
        lines += _what_runs_buy(group, target_score) + _noise_floor(group) + _variance_table(group)
        for caption, path in (plots or {}).get(task, ()):
            lines += ["", f"![{caption}]({path})"]
        lines.append("")
    if costs is not None:
        lines += render_costs(costs)
    return "\n".join(lines)


def render_costs(costs: StudyCosts) -> list[str]:
    """The summary's "Where the time went" section, as Markdown lines (none for a study that ran nothing)."""
    if not costs.runs:
        return []
    lines = [
        "## Where the time went",
        "",
        f"Compute: {format_duration(costs.compute_s)} of run wall time over {costs.runs} runs "
        f"(mean {costs.compute_s / costs.runs:.1f} s per run).",
    ]
    share = costs.outside_training_share
    if share is None:
        return [*lines, "", "No run recorded its timings (results written before they were kept).", ""]
    lines += [
        f"Outside the training loop: {share:.0%} of the {costs.timed_runs} timed runs' wall time.",
        "",
        "| phase | total | per run | share |",
        "|---|---|---|---|",
    ]
    for phase, seconds in costs.phases.items():
        lines.append(
            f"| {phase} | {format_duration(seconds)} | {seconds / costs.timed_runs:.1f} s | "
            f"{seconds / costs.timed_compute_s:.1%} |"
        )
    lines += [
        "",
        "From each run's `results.json` `timings`; *outside the job*: the runner's wall time beyond the job's own "
        "total (the process's start before Python and its exit after the results are written).",
        "",
    ]
    return lines
