"""The verdict's words, table-driven: every case names what the tests support and nothing more."""

from __future__ import annotations

import pytest

from transformers_fine_tuning.study import summarize
from transformers_fine_tuning.study.report.verdict import verdicts
from transformers_fine_tuning.study.run.store import RunRecord

CONSTANT = 0.527  # RTE dev's best constant predictor


def runs_of(recipe: str, values: list[float | None]) -> list[RunRecord]:
    return [
        RunRecord(
            run_id=f"rte/{recipe}/seed{seed}",
            position=seed,
            task="rte",
            recipe=recipe,
            seed=seed,
            data_seed=seed,
            status="completed",
            attempts=1,
            output_dir="/nowhere",
            config_hash="0",
            argv=(),
            main_metric_name="accuracy",
            main_metric_split="validation",
            main_metric=value,
            constant_baseline=CONSTANT,
            failed_run=value is None or value <= CONSTANT,
            wall_time_s=60.0,
        )
        for seed, value in enumerate(values)
    ]


def spread(centre: float, n: int, step: float = 0.01) -> list[float]:
    return [round(centre + step * (i - (n - 1) / 2), 4) for i in range(n)]


CASES = {
    # the audit: baseline 16 at 0.80 and 4 failed at 0.30, a recipe at 0.75: a higher mean, lower ranks
    "means and ranks disagree": (
        runs_of("base", [0.80] * 16 + [0.30] * 4) + runs_of("steady", [0.75] * 20),
        [
            "of a single run: **steady** (mean 0.7500), yet its scores are typically *lower* than base's",
            "P(steady > base) = 0.20",
            "fewer failures, not a higher typical score",
            "steady: all 20 runs scored the same",
        ],
        ["higher than base's beyond chance", "read this as a hint"],
    ),
    "a clear winner": (
        runs_of("base", spread(0.60, 10)) + runs_of("better", spread(0.80, 10)),
        [
            "best of 10 runs: **better**",
            "higher than base's (ΔE[best of 2]",
            "its scores higher than base's beyond chance",
            "P(better > base) = 1.00",
            "no run failed",
        ],
        ["hint", "not distinguishable", "80 % power"],
    ),
    "ties are named together": (
        runs_of("base", spread(0.60, 4)) + runs_of("a", spread(0.70, 4)) + runs_of("b", spread(0.70, 4)),
        ["tied: **a** and **b**", "With 4 runs per recipe, read this as a hint."],
        [],
    ),
    "no baseline runs": (
        runs_of("a", spread(0.60, 3)) + runs_of("b", spread(0.65, 3)),
        ["the baseline base has no completed run, so nothing is tested against it"],
        ["p = –", "not distinguishable"],
    ),
    "a degenerate baseline": (
        runs_of("base", [0.70, 0.50]) + runs_of("a", [0.65, 0.66]),
        ["the baseline base failed 1 of 2 runs (degenerate: its spread is not compared)"],
        ["almost every"],
    ),
    "indistinguishable, with the seeds a decision needs": (
        runs_of("base", [0.60, 0.62, 0.50, 0.64, 0.61]) + runs_of("a", [0.61, 0.63, 0.59, 0.50, 0.65]),
        ["not distinguishable from base", "80 % power would need about"],
        ["beyond chance"],
    ),
    "a recipe that fails most runs is still the best of n": (
        runs_of("base", spread(0.60, 10)) + runs_of("lucky", [0.50] * 8 + [0.91, 0.90]),
        [
            "best of 10 runs: **lucky**",
            "lucky failed 8 of 10 runs (degenerate",
            "lucky fails more often than base",
        ],
        ["Left out"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_verdict_words(case: str) -> None:
    runs, present, absent = CASES[case]
    verdict = verdicts(summarize(runs, baseline="base", n_resamples=999))["rte"]
    for text in present:
        assert text in verdict, f"{case}: {text!r} missing from {verdict!r}"
    for text in absent:
        assert text not in verdict, f"{case}: {text!r} should not be in {verdict!r}"


def test_no_runs_and_too_few_runs() -> None:
    assert verdicts(summarize(runs_of("base", [0.6]) + runs_of("a", [0.7]), baseline="base"))["rte"] == (
        "Too few runs for a verdict (1 per recipe)."
    )
    pending = [RunRecord(**{**runs_of("base", [0.6])[0].__dict__, "status": "pending", "main_metric": None})]
    assert verdicts(summarize(pending, baseline="base"))["rte"] == "No completed runs yet."


def test_every_run_is_counted_non_finite_and_pruned_included() -> None:
    """A run whose metric was non-finite (stored as null) stays in n and in the failed runs, at the constant's
    score; a pruned run counts with the score it stopped at — in the table, the CSV columns and the verdict."""
    base = runs_of("base", spread(0.60, 4))
    diverged = runs_of("a", [0.65, 0.66, None])
    pruned = runs_of("a", [0.40])[0].__class__(
        **{
            **runs_of("a", [0.40])[0].__dict__,
            "run_id": "rte/a/pruned",
            "stopped_early": "dev_failure",
            "position": 9,
        }
    )
    base_summary, a = summarize([*base, *diverged, pruned], baseline="base", n_resamples=999)
    assert (a.description.n, a.description.failed_runs, a.unscored, a.pruned) == (4, 2, 1, 1)
    assert a.description.minimum == 0.40 and base_summary.description.failed_runs == 0
    assert a.description.mean == pytest.approx((0.65 + 0.66 + CONSTANT + 0.40) / 4)
    assert a.comparison.failure_difference == pytest.approx(0.5)  # 2 of 4 against 0 of 4
