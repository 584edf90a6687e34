"""GLUE metrics against hand-computed values and the best constant predictor's scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from transformers import EvalPrediction

from transformers_fine_tuning.tasks import (
    GLUE_TASKS,
    CustomTask,
    compute_glue_metrics,
    constant_baseline,
    default_metrics,
    label_counts,
    load_glue_dir,
    make_compute_metrics,
    metric_choices,
    per_class_f1,
    with_metrics,
)

# A task of your own data with three classes (name, texts, labels, regression, metrics, main metric), as
# load_custom_task builds it from tests/data/sentiment.
SENTIMENT = CustomTask(
    "sentiment", ("text",), ("negative", "neutral", "positive"), False, ("accuracy", "f1_macro"), "accuracy"
)


def test_accuracy() -> None:
    assert compute_glue_metrics("rte", [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 0.75}


def test_mnli_accuracy_with_three_classes() -> None:
    assert compute_glue_metrics("mnli", [0, 1, 2, 2, 1], [0, 1, 2, 1, 0]) == {"accuracy": pytest.approx(0.6)}


def test_accuracy_and_f1_of_the_positive_class() -> None:
    # TP = 2, FP = 1, FN = 1, TN = 1: precision = recall = F1 = 2/3, accuracy 3/5.
    predictions, labels = [1, 1, 0, 1, 0], [1, 0, 0, 1, 1]
    assert compute_glue_metrics("mrpc", predictions, labels) == pytest.approx({"accuracy": 0.6, "f1": 2 / 3})
    assert compute_glue_metrics("qqp", predictions, labels) == pytest.approx({"accuracy": 0.6, "f1": 2 / 3})


def test_f1_without_positive_predictions_is_zero() -> None:
    assert compute_glue_metrics("mrpc", [0, 0, 0], [1, 0, 1]) == pytest.approx({"accuracy": 1 / 3, "f1": 0.0})


def test_matthews_correlation() -> None:
    # (TP * TN - FP * FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2) = 1/6.
    assert compute_glue_metrics("cola", [1, 1, 0, 1, 0], [1, 0, 0, 1, 1]) == {
        "matthews_correlation": pytest.approx(1 / 6)
    }
    assert compute_glue_metrics("cola", [1, 0, 1], [0, 1, 0]) == {"matthews_correlation": pytest.approx(-1.0)}
    assert compute_glue_metrics("cola", [1, 1, 1], [0, 1, 0]) == {"matthews_correlation": 0.0}


def test_pearson_and_spearman_of_raw_scores() -> None:
    # Pearson: 6 / sqrt(10 * 6); Spearman on ranks [1..5] and [1, 2.5, 4.5, 2.5, 4.5]: 7 / sqrt(10 * 9).
    metrics = compute_glue_metrics("stsb", [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 5.0, 4.0, 5.0])
    assert metrics == pytest.approx({"pearson": 6 / math.sqrt(60), "spearmanr": 7 / math.sqrt(90)})
    # Deviations [-1.5, -0.5, 2] and [2, 0, -2]: Pearson -7 / sqrt(6.5 * 8); ranks reversed: Spearman -1.
    assert compute_glue_metrics("stsb", [0.5, 1.5, 4.0], [5.0, 3.0, 1.0]) == pytest.approx(
        {"pearson": -7 / math.sqrt(52), "spearmanr": -1.0}
    )


def test_correlation_of_a_constant_is_zero() -> None:
    assert compute_glue_metrics("stsb", [2.5, 2.5, 2.5], [1.0, 2.0, 3.0]) == {
        "pearson": 0.0,
        "spearmanr": 0.0,
    }


def test_metric_input_errors() -> None:
    with pytest.raises(
        ValueError, match=r"labels must be class indices in 0\.\.1 .* \(-1 marks an unlabelled test split"
    ):
        compute_glue_metrics("rte", [0, 1], [-1, -1])
    with pytest.raises(ValueError, match=r"predictions must be a 1-D sequence of class indices"):
        compute_glue_metrics("rte", [[0.2, 0.8], [0.9, 0.1]], [1, 0])
    with pytest.raises(ValueError, match=r"same length, got shapes \(2,\) and \(3,\)"):
        compute_glue_metrics("rte", [0, 1], [0, 1, 1])


def test_compute_metrics_for_trainer_takes_argmax_of_logits() -> None:
    compute_metrics = make_compute_metrics("mrpc")
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5], [1.0, 0.0]])
    labels = np.array([1, 0, 0, 0])
    assert compute_metrics(EvalPrediction(predictions=logits, label_ids=labels)) == pytest.approx(
        {"accuracy": 0.75, "f1": 2 / 3}
    )
    # Models that return extra outputs give a tuple whose first element is the logits.
    hidden = np.zeros((4, 3))
    assert compute_metrics(EvalPrediction(predictions=(logits, hidden), label_ids=labels))["accuracy"] == 0.75


def test_compute_metrics_for_trainer_squeezes_regression_output() -> None:
    compute_metrics = make_compute_metrics("stsb")
    scores = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]], dtype=np.float32)
    labels = np.array([2.0, 4.0, 5.0, 4.0, 5.0], dtype=np.float32)
    assert compute_metrics(EvalPrediction(predictions=scores, label_ids=labels))["pearson"] == pytest.approx(
        6 / math.sqrt(60), rel=1e-6
    )


def test_label_counts() -> None:
    assert label_counts("mnli", [2, 0, 2, 2]) == {"entailment": 1, "neutral": 0, "contradiction": 3}
    with pytest.raises(ValueError, match=r"'stsb' is a regression task"):
        label_counts("stsb", [1.0, 2.0])


def test_constant_baseline_takes_the_best_constant_of_the_evaluated_split() -> None:
    # On [1, 0, 0, 1] both constants score accuracy 1/2; F1 is best with 1 everywhere: 2 * 2 / (2 * 2 + 2) = 2/3.
    assert constant_baseline("mrpc", [1, 0, 0, 1]) == pytest.approx({"accuracy": 0.5, "f1": 2 / 3})
    # The split's own majority, whatever the training set's: 2 of 3 are class 1 here.
    assert constant_baseline("rte", [1, 1, 0]) == pytest.approx({"accuracy": 2 / 3})
    # F1 of class 1 when class 1 is the minority: accuracy takes the majority (0: 3/4), F1 predicts 1: 2/5.
    assert constant_baseline("mrpc", [0, 0, 0, 1]) == pytest.approx({"accuracy": 0.75, "f1": 0.4})
    assert constant_baseline("cola", [0, 1, 1]) == {"matthews_correlation": 0.0}


def test_constant_baseline_of_regression_is_zero_correlation() -> None:
    assert constant_baseline("stsb", [0.0, 5.0, 2.5]) == {"pearson": 0.0, "spearmanr": 0.0}


def test_constant_baseline_on_real_rte_and_mrpc(shared_glue: Path) -> None:
    rte = load_glue_dir("rte", shared_glue)
    # 146 of the 277 dev pairs are entailment.
    baseline = constant_baseline("rte", rte["validation"]["label"])
    assert baseline == pytest.approx({"accuracy": 146 / 277})
    assert baseline == pytest.approx({"accuracy": 0.527}, abs=5e-4)
    # The audit's case: the first 1,000 training pairs' majority is not_entailment (510 of 1,000), whose
    # constant scores only 131/277 on dev; the evaluated split's best constant is still 146/277.
    first_1000 = np.asarray(rte["train"]["label"][:1000])
    assert np.bincount(first_1000).tolist() == [490, 510]
    assert int(np.sum(np.asarray(rte["validation"]["label"]) == 1)) == 131
    mrpc = load_glue_dir("mrpc", shared_glue)
    baseline = constant_baseline("mrpc", mrpc["validation"]["label"])
    # Always "equivalent": precision 279/408, recall 1, F1 = 2 * 279 / (279 + 408).
    assert baseline == pytest.approx({"accuracy": 279 / 408, "f1": 558 / 687})
    assert baseline == pytest.approx({"accuracy": 0.684, "f1": 0.812}, abs=5e-4)


def test_three_classes_accuracy_macro_f1_and_per_class_f1() -> None:
    # Confusions: negative 2/2 right, neutral 1 of 2 (one called positive), positive 1 of 2 (one called negative).
    predictions, labels = [0, 0, 1, 2, 2, 0], [0, 0, 1, 1, 2, 2]
    # F1 per class: negative P 2/3 R 1 -> 0.8; neutral P 1 R 1/2 -> 2/3; positive P 1/2 R 1/2 -> 1/2.
    assert per_class_f1(SENTIMENT, predictions, labels) == pytest.approx(
        {"negative": 0.8, "neutral": 2 / 3, "positive": 0.5}
    )
    assert compute_glue_metrics(SENTIMENT, predictions, labels) == pytest.approx(
        {"accuracy": 4 / 6, "f1_macro": (0.8 + 2 / 3 + 0.5) / 3}
    )
    # a class neither predicted nor present has F1 0 in the per-class table
    assert per_class_f1(SENTIMENT, [0, 2], [0, 2]) == {"negative": 1.0, "neutral": 0.0, "positive": 1.0}
    with pytest.raises(ValueError, match=r"'stsb' is a regression task"):
        per_class_f1("stsb", [1.0], [1.0])


def test_constant_baseline_of_three_classes() -> None:
    # On [0, 1, 1, 2]: the best constant is neutral (1), accuracy 1/2; its macro-F1 over the classes present
    # (negative 0, neutral 2/3, positive 0) = 2/9.
    baseline = constant_baseline(SENTIMENT, [0, 1, 1, 2])
    assert baseline == pytest.approx({"accuracy": 0.5, "f1_macro": 2 / 9})


def test_default_metrics_by_kind() -> None:
    assert default_metrics(regression=True, num_labels=1) == (("pearson", "spearmanr"), "pearson")
    assert default_metrics(regression=False, num_labels=2) == (("accuracy", "f1"), "accuracy")
    assert default_metrics(regression=False, num_labels=5) == (("accuracy", "f1_macro"), "accuracy")
    assert metric_choices(SENTIMENT) == ("accuracy", "f1_macro", "matthews_correlation")
    assert metric_choices(GLUE_TASKS["stsb"]) == ("pearson", "spearmanr")


def test_main_and_extra_metrics_on_request() -> None:
    mcc = with_metrics(SENTIMENT, "matthews_correlation")
    assert mcc.main_metric == "matthews_correlation" and SENTIMENT.main_metric == "accuracy"  # a copy
    assert mcc.metric_names == ("accuracy", "f1_macro", "matthews_correlation")
    # multi-class Matthews correlation of a perfect prediction is 1
    assert compute_glue_metrics(mcc, [0, 1, 2], [0, 1, 2])["matthews_correlation"] == 1.0
    rte = with_metrics(GLUE_TASKS["rte"], None, ["f1", "matthews_correlation"])  # GLUE tasks too
    assert (rte.name, rte.main_metric, rte.metric_names) == (
        "rte",
        "accuracy",
        ("accuracy", "f1", "matthews_correlation"),
    )
    assert rte.folder == "RTE" and with_metrics(SENTIMENT) is SENTIMENT
    with pytest.raises(
        ValueError, match=r"\['f1'\] do not apply to task 'sentiment' \(3-class classification\)"
    ):
        with_metrics(SENTIMENT, "f1")
    with pytest.raises(
        ValueError, match=r"\['accuracy'\] do not apply to task 'stsb' \(regression\): choose"
    ):
        with_metrics(GLUE_TASKS["stsb"], "accuracy")
