"""The verdict line of a study: one sentence per task that names what the tests support, and nothing more.

Its parts, each only where the numbers are there to support it:

* **best of n** — the recipe with the best expected score of the best of n runs (n: the fewest runs any recipe
  has), failing recipes included: a recipe that fails 8 runs of 10 and reaches 0.91 in the other two is what
  best-of-n with restarts is about. Its claim against the baseline is tested by the bootstrap interval of
  ΔE[best of n]. Equal estimates are named together, never settled by the order of the list.
* **a single run** — the recipe with the best mean (E[best of 1]); against the baseline, Mann–Whitney's p-value
  (Holm-adjusted) with the direction of the same statistic, P(recipe > baseline): where the mean and the ranks
  disagree, the sentence says so.
* **failures** — recipes whose failure rate differs from the baseline's (Fisher, Holm-adjusted), with
  Newcombe's interval of the difference.
* **what is not compared** — a missing baseline; a degenerate one (its spread is not compared); degenerate
  recipes and recipes whose runs all scored the same, with their counts; seed-to-seed spreads within the dev
  set's own noise.
* **how many seeds** — when the single-run leader is not told apart from the baseline, the runs per recipe 80 %
  power would need; with fewer than 10 runs a recipe, "read this as a hint".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .formatting import band, number, p_value

if TYPE_CHECKING:
    from ..analysis.summary import GroupSummary

__all__ = ["verdict", "verdicts"]

ALPHA = 0.05
HINT_BELOW = 10
"""With fewer runs per recipe than this the verdict is called a hint."""


def _leaders(group: Sequence[GroupSummary], value: Callable[[GroupSummary], float]) -> list[GroupSummary]:
    """The recipes with the largest ``value`` (all of them when equal)."""
    best = max(value(s) for s in group)
    return [s for s in group if math.isclose(value(s), best, rel_tol=0.0, abs_tol=1e-12)]


def _names(group: Sequence[GroupSummary]) -> str:
    names = [f"**{s.recipe}**" for s in group]
    return names[0] if len(names) == 1 else "tied: " + " and ".join(names)


def _best_of_n(leaders: list[GroupSummary], n: int, base: GroupSummary | None, base_name: str) -> str:
    text = f"best expected score of the best of {n} runs: {_names(leaders)} ({number(leaders[0].expected_max.at(n))})"
    if base is None or len(leaders) > 1:
        return text
    c = leaders[0].comparison
    if c is None:
        return text + " — the baseline itself"
    delta = f"ΔE[best of {c.expected_max_n}] = {c.expected_max_difference:+.4f}, 95 % CI " + band(
        c.expected_max_difference_low, c.expected_max_difference_high
    )
    if c.expected_max_difference_low > 0:
        return f"{text}, higher than {base_name}'s ({delta})"
    return f"{text}, not distinguishable from {base_name}'s ({delta})"


def _single_run(leaders: list[GroupSummary], base: GroupSummary | None, base_name: str) -> str:
    text = f"of a single run: {_names(leaders)} (mean {number(leaders[0].description.mean)})"
    if base is None or len(leaders) > 1:
        return text
    c = leaders[0].comparison
    if c is None:
        return text + " — the baseline itself"
    odds = f"P({leaders[0].recipe} > {base_name}) = {number(c.superiority, 2)} {band(c.superiority_low, c.superiority_high, 2)}"
    tests = f"Mann–Whitney p = {p_value(c.mann_whitney_p)}, Holm {p_value(c.mann_whitney_p_holm)} over {c.comparisons}"
    if c.mann_whitney_p_holm < ALPHA and c.direction > 0:
        return f"{text}, its scores higher than {base_name}'s beyond chance ({odds}; {tests})"
    if c.mann_whitney_p_holm < ALPHA and c.direction < 0:
        return (
            f"{text}, yet its scores are typically *lower* than {base_name}'s ({odds}; {tests}): a higher mean "
            "from fewer failures, not a higher typical score"
        )
    return f"{text}, not distinguishable from {base_name} ({odds}; {tests})"


def _failures(group: Sequence[GroupSummary], base: GroupSummary, base_name: str) -> str:
    told = []
    for s in group:
        c = s.comparison
        if c is None or not c.fisher_p_holm < ALPHA:
            continue
        how = "less" if c.failure_difference < 0 else "more"
        told.append(
            f"{s.recipe} fails {how} often than {base_name} ({s.description.failed_runs}/{s.description.n} vs "
            f"{base.description.failed_runs}/{base.description.n}, difference "
            f"{band(c.failure_difference_low, c.failure_difference_high, 2)}, Fisher Holm p = {p_value(c.fisher_p_holm)})"
        )
    if told:
        return "; ".join(told)
    failing = sum(s.description.failed_runs for s in group)
    return "no difference in failure rates is told apart" if failing else "no run failed"


def _not_compared(group: Sequence[GroupSummary], base_name: str) -> list[str]:
    notes = []
    for s in group:
        d = s.description
        who = f"the baseline {s.recipe}" if s.recipe == base_name else s.recipe
        if d.degenerate:
            notes.append(
                f"{who} failed {d.failed_runs} of {d.n} runs (degenerate: its spread is not compared)"
            )
        elif d.zero_spread:
            notes.append(f"{who}: all {d.n} runs scored the same (no spread to compare)")
    within = [s.recipe for s in group if s.noise_floor is not None and not s.noise_floor.exceeds]
    if within:
        notes.append(
            f"the seed-to-seed spread of {', '.join(within)} is not above what the dev set's finite size alone "
            "produces"
        )
    return notes


def _seeds_needed(leaders: list[GroupSummary], base_name: str) -> str | None:
    c = leaders[0].comparison if len(leaders) == 1 else None
    if c is None or c.mann_whitney_p_holm < ALPHA:
        return None
    needs = []
    if c.seeds_for_shift is not None:
        needs.append(f"{c.seeds_for_shift} runs a recipe to tell the observed P(> {base_name}) from ½")
    if c.seeds_for_failure_rates is not None:
        needs.append(f"{c.seeds_for_failure_rates} to tell the observed failure rates apart")
    return "80 % power would need about " + " and ".join(needs) if needs else None


def verdict(group: Sequence[GroupSummary]) -> str:
    """The verdict sentence for one task's summaries (see the module docstring)."""
    scored = [s for s in group if s.description.n]
    if not scored:
        return "No completed runs yet."
    n = min(s.description.n for s in scored)
    if len(scored) < 2 or n < 2:
        return f"Too few runs for a verdict ({n} per recipe)."
    base_name = scored[0].baseline_recipe
    base = next((s for s in scored if s.recipe == base_name), None)
    parts = [
        _best_of_n(_leaders(scored, lambda s: s.expected_max.at(n)), n, base, base_name),
        _single_run(_leaders(scored, lambda s: s.expected_max.at(1)), base, base_name),
    ]
    if base is None:
        parts.append(f"the baseline {base_name} has no completed run, so nothing is tested against it")
    else:
        parts.append(_failures(scored, base, base_name))
        seeds = _seeds_needed(_leaders(scored, lambda s: s.expected_max.at(1)), base_name)
        if seeds:
            parts.append(seeds)
    parts += _not_compared(scored, base_name)
    text = "; ".join(parts) + "."
    if n < HINT_BELOW:
        text += f" With {n} runs per recipe, read this as a hint."
    return text[0].upper() + text[1:]


def verdicts(summaries: Sequence[GroupSummary]) -> dict[str, str]:
    """Per task (in the summaries' order), its verdict sentence."""
    return {
        task: verdict([s for s in summaries if s.task == task])
        for task in dict.fromkeys(s.task for s in summaries)
    }
