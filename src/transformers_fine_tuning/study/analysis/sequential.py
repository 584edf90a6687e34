"""Until decided: a study that adds seeds in rounds until its comparisons are decided, with an honest error rate.

Looking at the p-values after every batch of seeds and stopping at the first p < 0.05 inflates the false
positives (three looks at α = 0.05 each: about 0.09, measured in :mod:`.power`'s tests). A study with
``until_decided: {round: R}`` runs R seeds per recipe, then R more, up to the study's ``seeds`` (the maximum
M), and at look k (k·R runs a recipe) tests each recipe against the baseline with Mann–Whitney U; a recipe is
*decided* at the first look whose p-value is at most that look's share of α, from a Lan–DeMets spending function
(:func:`~.power.spending_boundaries`; O'Brien–Fleming by default: little α spent early, most kept for the end),
divided among the recipes compared (Bonferroni). The whole error rate stays at most α whatever the looks'
correlation. The study stops adding seeds to a task when every comparison is decided, or at M.

The state is computed from the store's completed runs alone — the first k·R seeds of each recipe, in the study's
order — so the pipeline (what to run next) and the summary (how many seeds it took) read the same decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..run.spec import UntilDecided
from ..run.store import COMPLETED, RunRecord
from .power import spending_boundaries

__all__ = ["SequentialState", "next_runs_per_recipe", "sequential_state"]

SPENDING_NAMES = {"obrien_fleming": "O'Brien–Fleming", "pocock": "Pocock"}


@dataclass(frozen=True)
class SequentialState:
    """Where a task's sequential study stands: the looks taken (runs a recipe at each), the recipes decided with
    the look that decided them, and whether it needs no more seeds (``done``)."""

    looks: tuple[int, ...]
    max_runs: int
    decided: dict[str, int] = field(default_factory=dict)
    undecided: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return not self.undecided or (bool(self.looks) and self.looks[-1] >= self.max_runs)

    def sentence(self, rule: UntilDecided) -> str:
        """What the summary says of it."""
        how = f"{SPENDING_NAMES[rule.spending]} spending, α = {rule.alpha:g}"
        if not self.undecided:
            return (
                f"Sequential: every comparison decided after {self.looks[-1]} runs a recipe (look "
                f"{len(self.looks)}, {how})."
            )
        if self.done:
            return f"Sequential: not decided within {self.max_runs} runs a recipe ({', '.join(self.undecided)}; {how})."
        taken = self.looks[-1] if self.looks else 0
        return (
            f"Sequential: {taken} runs a recipe so far, not yet decided ({', '.join(self.undecided)}; {how})."
        )


def _looks(rule: UntilDecided, max_runs: int) -> list[int]:
    looks = list(range(rule.round, max_runs, rule.round))
    return [*looks, max_runs]


def sequential_state(
    runs: Sequence[RunRecord], recipes: Sequence[str], baseline: str, max_runs: int, rule: UntilDecided
) -> SequentialState:
    """The state of one task's sequential study from its runs (any status; completed ones count)."""
    compared = [recipe for recipe in recipes if recipe != baseline]
    scores = {
        recipe: [
            float(run.main_metric if run.main_metric is not None else -np.inf)
            for run in sorted(runs, key=lambda run: run.position)
            if run.recipe == recipe and run.status == COMPLETED
        ]
        for recipe in recipes
    }
    plan = _looks(rule, max_runs)
    thresholds = spending_boundaries(plan, max_runs, alpha=rule.alpha, kind=rule.spending)
    taken: list[int] = []
    decided: dict[str, int] = {}
    for look, threshold in zip(plan, thresholds, strict=True):
        if min(len(values) for values in scores.values()) < look:
            break
        taken.append(look)
        for recipe in compared:
            if recipe in decided:
                continue
            p = stats.mannwhitneyu(
                scores[recipe][:look], scores[baseline][:look], alternative="two-sided"
            ).pvalue
            if p <= threshold / max(1, len(compared)):
                decided[recipe] = look
        if len(decided) == len(compared):
            break
    return SequentialState(
        tuple(taken), max_runs, decided, tuple(recipe for recipe in compared if recipe not in decided)
    )


def next_runs_per_recipe(state: SequentialState, rule: UntilDecided) -> int:
    """The runs a recipe the study should have now: the last look's when done (all of them when nothing is
    compared), else one more round than the looks taken."""
    if state.done:
        return state.looks[-1] if state.decided else state.max_runs
    taken = state.looks[-1] if state.looks else 0
    return min(state.max_runs, taken + rule.round)
