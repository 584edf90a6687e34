"""The failed-run definition: each rule on known inputs, the audit's counter-example, and old results re-judged."""

from __future__ import annotations

import math

import pytest

from transformers_fine_tuning.failure import ONE_CLASS_SHARE, constant_baseline_from_majority, judge
from transformers_fine_tuning.results import RunResults

RTE_DEV = [0] * 146 + [1] * 131  # 146 entailment, 131 not_entailment


def rte(value, predictions=(), baseline=146 / 277, **kwargs):
    return judge(
        metric="accuracy",
        split="validation",
        value=value,
        baseline=baseline,
        predictions=predictions,
        **kwargs,
    )


def test_a_collapsed_run_is_failed_against_the_evaluated_splits_best_constant() -> None:
    # The audit: always "entailment" scores 146/277 = 0.5271 — above the training majority's 131/277 = 0.4729,
    # the old baseline, so it passed. Judged against the evaluated split's best constant it is failed.
    verdict = rte(146 / 277, [0] * 277, labels=RTE_DEV)
    assert verdict.failed and verdict.rule == "at_or_below_constant"
    assert verdict.baseline == pytest.approx(0.5271, abs=1e-4)
    assert verdict.top_class_share == 1.0 and verdict.label_top_share == pytest.approx(146 / 277)
    # every llrd/l2sp run of README's old evidence (max 0.5162) is at or below it
    assert rte(0.5162).failed


def test_one_class_predictions_fail_even_above_the_constant() -> None:
    # 270 of 277 answered "entailment" and the 7 others happen to be right: 153/277 > 146/277.
    predictions = [0] * 270 + [1] * 7
    assert ONE_CLASS_SHARE <= 270 / 277
    verdict = rte(153 / 277, predictions, labels=RTE_DEV)
    assert verdict.failed and verdict.rule == "one_class"
    # a split whose own labels are that concentrated cannot tell collapse from skill: the rule does not apply
    skewed = [0] * 270 + [1] * 7
    assert not judge(
        metric="accuracy", split="v", value=0.99, baseline=270 / 277, predictions=skewed, labels=skewed
    ).failed


def test_a_run_that_learnt_is_not_failed() -> None:
    predictions = [0] * 150 + [1] * 127
    verdict = rte(0.60, predictions, labels=RTE_DEV)
    assert not verdict.failed and verdict.rule is None and verdict.value == 0.60


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"value": 0.9, "pruned": True, "stopped_early": "dev_failure"}, "pruned"),
        ({"value": 0.9, "stopped_early": "non_finite"}, "non_finite"),
        ({"value": float("nan")}, "non_finite"),
        ({"value": None}, "non_finite"),
        ({"value": float("inf")}, "non_finite"),
        (
            {"value": 146 / 277},
            "at_or_below_constant",
        ),  # equal counts as failed (Mosbach et al.: "no better")
    ],
)
def test_each_rule_in_order(kwargs, rule) -> None:
    verdict = rte(**kwargs)
    assert verdict.failed and verdict.rule == rule


def test_other_metrics_and_regression() -> None:
    # MRPC is judged on F1: the best constant (all "equivalent") has F1 558/687 = 0.812
    assert judge(metric="f1", split="validation", value=0.80, baseline=558 / 687).failed
    assert not judge(metric="f1", split="validation", value=0.85, baseline=558 / 687).failed
    # Matthews correlation and regression: a constant scores 0; rule 4 never applies to scores
    assert (
        judge(metric="matthews_correlation", split="v", value=0.0, baseline=0.0).rule
        == "at_or_below_constant"
    )
    regression = judge(
        metric="pearson", split="v", value=0.1, baseline=0.0, predictions=[1.0] * 20, regression=True
    )
    assert not regression.failed and regression.top_class_share is None


def test_constant_baseline_from_a_version_2_majority() -> None:
    # RTE on the first 1,000 training pairs: the training majority's constant scored 131/277 on dev
    assert constant_baseline_from_majority(
        {"accuracy": 131 / 277}, regression=False, num_labels=2
    ) == pytest.approx({"accuracy": 146 / 277})
    # MRPC: the constant was class 1 (F1 > 0), so class 1's share is its accuracy; the best F1 is 2p/(1 + p)
    best = constant_baseline_from_majority(
        {"accuracy": 279 / 408, "f1": 558 / 687}, regression=False, num_labels=2
    )
    assert best == pytest.approx({"accuracy": 279 / 408, "f1": 558 / 687})
    # the constant was class 0 (F1 = 0): class 1's share is 1 − accuracy
    best = constant_baseline_from_majority(
        {"accuracy": 0.7, "f1": 0.0, "matthews_correlation": 0.0}, regression=False, num_labels=2
    )
    assert best == pytest.approx({"accuracy": 0.7, "f1": 0.6 / 1.3, "matthews_correlation": 0.0})
    assert constant_baseline_from_majority({"pearson": 0.0}, regression=True, num_labels=0) == {
        "pearson": 0.0
    }
    # three classes: the split's shares cannot be recovered; the recorded values stay
    assert constant_baseline_from_majority({"accuracy": 0.3}, regression=False, num_labels=3) == {
        "accuracy": 0.3
    }


def _version_2(accuracy: float, predictions: list[int]) -> dict:
    return {
        "schema_version": 2,
        "status": "completed",
        "task": "rte",
        "model": "m",
        "seed": 0,
        "data_seed": 0,
        "main_metric": {"name": "accuracy", "split": "validation", "value": accuracy},
        "failed": False,
        "metrics": {"validation": {"accuracy": accuracy}},
        "majority_baseline": {"validation": {"accuracy": 131 / 277}},
        "global_step": 10,
        "predictions": {"validation": predictions},
        "task_info": {"kind": "glue", "regression": False, "label_names": ["entailment", "not_entailment"]},
    }


def test_version_2_results_are_judged_again_by_todays_rules() -> None:
    # written as "not failed" against the training majority (0.4729); at or below 146/277 it is failed now
    results = RunResults.from_dict(_version_2(0.5054, [0] * 140 + [1] * 137))
    assert results.schema_version == 3 and results.failed
    assert results.failure.rule == "at_or_below_constant" and results.main_baseline == pytest.approx(
        146 / 277
    )
    # collapsed onto one class above the constant: failed by rule 4
    collapsed = RunResults.from_dict(_version_2(0.5379, [0] * 275 + [1] * 2))
    assert collapsed.failed and collapsed.failure.rule == "one_class"
    # a run that learnt stays a success
    assert not RunResults.from_dict(_version_2(0.5704, [0] * 150 + [1] * 127)).failed
    # non-finite: written as null
    assert RunResults.from_dict(_version_2(math.nan, [])).failure.rule == "non_finite"


def test_a_tie_computed_two_ways_is_a_tie() -> None:
    # 146/277 from the predictions, 1 − 131/277 from a version-2 file's training majority: the last bit differs
    assert 146 / 277 != 1 - 131 / 277
    assert rte(146 / 277, baseline=1 - 131 / 277).rule == "at_or_below_constant"
    assert judge(metric="accuracy", split="v", value=1 - 131 / 277, baseline=146 / 277).failed
