"""The GLUE task table: Hub column names, label orders, metrics, splits, and name lookup."""

from __future__ import annotations

import pytest
from datasets import ClassLabel, Value

from transformers_fine_tuning.tasks import GLUE_TASKS, get_task


def test_table_has_the_nine_glue_tasks() -> None:
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]
    assert {task.folder for task in GLUE_TASKS.values()} == {
        "CoLA",
        "SST-2",
        "MRPC",
        "QQP",
        "STS-B",
        "MNLI",
        "QNLI",
        "RTE",
        "WNLI",
    }


@pytest.mark.parametrize(
    ("name", "text_columns", "label_names", "main_metric"),
    [
        ("cola", ("sentence",), ("unacceptable", "acceptable"), "matthews_correlation"),
        ("sst2", ("sentence",), ("negative", "positive"), "accuracy"),
        ("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "f1"),
        ("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "f1"),
        ("stsb", ("sentence1", "sentence2"), ("none", "regression"), "pearson"),
        ("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "accuracy"),
        ("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "accuracy"),
        ("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy"),
        ("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "accuracy"),
    ],
)
def test_task_matches_the_hub_export(name, text_columns, label_names, main_metric) -> None:
    task = GLUE_TASKS[name]
    assert task.name == task.hub_config == name
    assert task.text_columns == text_columns
    assert task.label_names == label_names
    assert task.main_metric == main_metric
    assert task.main_metric in task.metric_names
    assert task.is_regression == (name == "stsb")
    assert task.num_labels == (1 if name == "stsb" else len(label_names))
    assert [file.split for file in task.files] == list(task.splits)


def test_metric_names() -> None:
    assert GLUE_TASKS["mrpc"].metric_names == GLUE_TASKS["qqp"].metric_names == ("accuracy", "f1")
    assert GLUE_TASKS["stsb"].metric_names == ("pearson", "spearmanr")
    assert GLUE_TASKS["cola"].metric_names == ("matthews_correlation",)


def test_splits() -> None:
    assert GLUE_TASKS["rte"].splits == ("train", "validation", "test")
    assert GLUE_TASKS["mnli"].splits == (
        "train",
        "validation_matched",
        "validation_mismatched",
        "test_matched",
        "test_mismatched",
    )
    assert GLUE_TASKS["mnli"].file_for("validation_mismatched").filename == "dev_mismatched.tsv"
    with pytest.raises(ValueError, match=r"GLUE task 'rte' has no split 'validation_matched'"):
        GLUE_TASKS["rte"].file_for("validation_matched")


def test_file_label_encodings() -> None:
    assert GLUE_TASKS["mrpc"].file_labels == ("0", "1")
    assert GLUE_TASKS["wnli"].file_labels == ("0", "1")  # 1 = entailment, the Hub's index 1
    assert GLUE_TASKS["rte"].file_labels == GLUE_TASKS["rte"].label_names
    assert GLUE_TASKS["stsb"].file_labels is None
    cola_train = GLUE_TASKS["cola"].file_for("train")
    assert (
        cola_train.has_header,
        cola_train.num_columns,
        cola_train.text_columns,
        cola_train.label_column,
    ) == (
        False,
        4,
        (3,),
        1,
    )


def test_features_are_the_hubs() -> None:
    features = GLUE_TASKS["qnli"].features()
    assert list(features) == ["question", "sentence", "label", "idx"]
    assert features["label"] == ClassLabel(names=["entailment", "not_entailment"])
    assert features["idx"] == Value("int32")
    assert GLUE_TASKS["stsb"].features()["label"] == Value("float32")


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("RTE", "rte"),
        ("sst-2", "sst2"),
        ("SST2", "sst2"),
        ("STS-B", "stsb"),
        ("sts_b", "stsb"),
        (" CoLA ", "cola"),
    ],
)
def test_get_task_accepts_case_and_dashes(alias: str, name: str) -> None:
    assert get_task(alias) is GLUE_TASKS[name]


def test_get_task_returns_a_task_unchanged() -> None:
    assert get_task(GLUE_TASKS["mrpc"]) is GLUE_TASKS["mrpc"]


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown GLUE task 'snli'; valid tasks are: cola, sst2, mrpc, .*, wnli"
    ):
        get_task("snli")


def test_tasks_are_frozen() -> None:
    with pytest.raises(AttributeError):
        GLUE_TASKS["rte"].main_metric = "f1"  # type: ignore[misc]
