"""The one results schema: written and read back unchanged, versions 1 and 2 upgraded, other versions refused with both
versions named, malformed files named, the Trainer's log split per evaluation split, files atomic and readable
by others."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from transformers_fine_tuning.results import (
    FAILED_DEFINITION,
    SCHEMA_VERSION,
    Evaluation,
    LossLog,
    MainMetric,
    ResultsVersionError,
    ResumedFrom,
    RunResults,
    TaskInfo,
    evaluations_from_log,
    metric_curve,
    read_results,
    split_metrics,
    write_json_atomic,
    write_results,
)

# A results.json as the version-1 writer (fine-tune.py before the schema) wrote it, trimmed to a few entries.
VERSION_1 = {
    "schema_version": 1,
    "status": "completed",
    "task": "mnli",
    "model": "albert-base-v2",
    "model_type": "albert",
    "recipe": "mosbach2021",
    "seed": 3,
    "data_seed": 7,
    "main_metric": {"name": "accuracy", "split": "validation_matched", "value": 0.61},
    "failed": False,
    "failed_definition": "final main metric on the first evaluation split <= the majority-class baseline's",
    "stopped_early": None,
    "diagnostics": {},
    "metrics": {
        "validation_matched": {"accuracy": 0.61, "loss": 0.9},
        "validation_mismatched": {"accuracy": 0.6, "loss": 0.92},
    },
    "majority_baseline": {
        "validation_matched": {"accuracy": 0.35},
        "validation_mismatched": {"accuracy": 0.36},
    },
    "evaluations": [
        {
            "eval_validation_matched_accuracy": 0.5,
            "eval_validation_matched_loss": 1.0,
            "epoch": 1.0,
            "step": 10,
        },
        {"eval_validation_mismatched_accuracy": 0.48, "epoch": 1.0, "step": 10},
        {
            "eval_validation_matched_accuracy": 0.61,
            "eval_validation_matched_loss": 0.9,
            "epoch": 2.0,
            "step": 20,
        },
    ],
    "train_loss_history": [{"step": 10, "epoch": 1.0, "loss": 1.05, "learning_rate": 1e-5, "grad_norm": 3.2}],
    "train_metrics": {"train_loss": 1.0, "train_runtime": 12.5},
    "num_examples": {"train": 64, "validation_matched": 32, "validation_mismatched": 32},
    "global_step": 20,
    "wall_time_s": 30.0,
    "started_at": "2026-11-30T10:00:00+00:00",
    "finished_at": "2026-11-30T10:00:30+00:00",
    "device": {"type": "cpu", "world_size": 1, "host": "h"},
    "versions": {"transformers-fine-tuning": "0.1.0"},
    "arguments": {"training": {"learning_rate": 2e-5}},
}


def results(**changes) -> RunResults:
    values = {
        "status": "completed",
        "task": "rte",
        "model": "m",
        "seed": 1,
        "data_seed": 1,
        "main_metric": MainMetric("accuracy", "validation", 0.62),
        "failed": False,
        "metrics": {"validation": {"accuracy": 0.62, "loss": 0.66}},
        "constant_baseline": {"validation": {"accuracy": 0.527}},
        "global_step": 8,
        "evaluations": [
            Evaluation(4, 0.5, "validation", {"accuracy": 0.55}),
            Evaluation(8, 1.0, "validation", {"accuracy": 0.62}),
        ],
        "train_loss_history": [LossLog(4, 0.5, 0.69, 1e-5, 2.0), LossLog(8, 1.0, 0.65)],
        "resumed_from": ResumedFrom("/runs/x/checkpoint-4", 4),
        "arguments": {"training": {"learning_rate": 2e-5, "report_to": ["none"]}},
    }
    return RunResults(**{**values, **changes})


def test_written_and_read_back_unchanged(tmp_path):
    original = results()
    path = write_results(tmp_path, original)  # a directory: results.json inside
    assert path == tmp_path / "results.json"
    content = json.loads(path.read_text())
    assert content["schema_version"] == SCHEMA_VERSION == 3
    assert content["evaluations"][1] == {
        "step": 8,
        "epoch": 1.0,
        "split": "validation",
        "metrics": {"accuracy": 0.62},
    }
    assert content["resumed_from"] == {"checkpoint": "/runs/x/checkpoint-4", "step": 4}
    assert read_results(tmp_path) == original
    assert original.main_baseline == 0.527
    assert original.curve() == ([4, 8], [0.55, 0.62])


def test_the_task_info_and_per_class_f1_round_trip_and_default_when_absent(tmp_path):
    task_info = TaskInfo("custom", False, ["negative", "neutral", "positive"], ["text"])
    per_class = {"validation": {"negative": 0.8, "neutral": 0.5, "positive": 1.0}}
    original = results(task="sentiment", task_info=task_info, per_class_f1=per_class)
    write_results(tmp_path, original)
    content = json.loads((tmp_path / "results.json").read_text())
    assert content["task_info"] == {
        "kind": "custom",
        "regression": False,
        "label_names": ["negative", "neutral", "positive"],
        "text_columns": ["text"],
    }
    assert read_results(tmp_path) == original and read_results(tmp_path).task_info == task_info
    # a version-2 file written before these fields reads with their defaults
    del content["task_info"], content["per_class_f1"]
    older = RunResults.from_dict(content)
    assert older.task_info is None and older.per_class_f1 == {} and older.task == "sentiment"


def test_version_1_is_upgraded():
    upgraded = RunResults.from_dict(VERSION_1, source="old.json")
    assert upgraded.schema_version == SCHEMA_VERSION and upgraded.resumed_from is None
    # the Trainer's keys split by the longest split name that prefixes them (split names have underscores)
    assert upgraded.evaluations == [
        Evaluation(10, 1.0, "validation_matched", {"accuracy": 0.5, "loss": 1.0}),
        Evaluation(10, 1.0, "validation_mismatched", {"accuracy": 0.48}),
        Evaluation(20, 2.0, "validation_matched", {"accuracy": 0.61, "loss": 0.9}),
    ]
    assert upgraded.curve() == ([10, 20], [0.5, 0.61])
    assert upgraded.curve("accuracy", "validation_mismatched") == ([10], [0.48])
    assert upgraded.train_loss_history == [LossLog(10, 1.0, 1.05, 1e-5, 3.2)]
    assert upgraded.main_metric == MainMetric("accuracy", "validation_matched", 0.61)
    # judged again by today's rules, and named so; three classes: the training majority's scores stay the baseline
    assert upgraded.failed_definition == FAILED_DEFINITION != VERSION_1["failed_definition"]
    assert upgraded.constant_baseline["validation_matched"] == {"accuracy": 0.35}
    assert not upgraded.failed and upgraded.failure.rule is None and upgraded.failure.baseline == 0.35
    assert RunResults.from_dict(upgraded.to_dict()) == upgraded


def test_other_versions_are_refused_naming_both(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(
        json.dumps({**VERSION_1, "schema_version": 9, "versions": {"transformers-fine-tuning": "3.0"}})
    )
    with pytest.raises(ResultsVersionError) as error:
        read_results(path)
    message = str(error.value)
    assert str(path) in message and "schema_version 9" in message and "writes version 3" in message
    assert "reads versions 1, 2, 3" in message and "(3.0)" in message
    path.write_text(json.dumps({"seed": 1}))  # no version at all: not a results file of ours
    with pytest.raises(ResultsVersionError, match="schema_version None"):
        read_results(path)


def test_malformed_files_are_named(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 2, "task": ')
    with pytest.raises(ValueError, match=f"{path} is not valid JSON"):
        read_results(path)
    incomplete = {key: value for key, value in results().to_dict().items() if key not in ("seed", "metrics")}
    path.write_text(json.dumps(incomplete))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['seed', 'metrics'\]"):
        read_results(path)
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "nowhere")


def test_evaluations_from_the_trainer_log():
    log = [
        {"loss": 0.7, "grad_norm": 1.0, "learning_rate": 1e-5, "epoch": 0.5, "step": 4},
        {"eval_validation_accuracy": 0.55, "eval_validation_loss": 0.69, "epoch": 0.5, "step": 4},
        {"train_runtime": 3.0, "train_loss": 0.68, "epoch": 1.0, "step": 8},
    ]
    assert evaluations_from_log(log, ["validation"]) == [
        Evaluation(4, 0.5, "validation", {"accuracy": 0.55, "loss": 0.69})
    ]
    assert split_metrics({"eval_test_accuracy": 1.0, "epoch": 1}, ["validation"]) == {}
    nan = [
        Evaluation(2, None, "validation", {"accuracy": float("nan")}),
        Evaluation(1, None, "validation", {"accuracy": 0.5}),
    ]
    assert metric_curve(nan, "accuracy", "validation") == ([1], [0.5])  # sorted, finite values only


def test_files_are_atomic_and_get_the_users_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "sub" / "x.json", {"a": float("inf"), "b": (1, 2)})
    finally:
        os.umask(previous)
    assert json.loads(path.read_text()) == {"a": None, "b": [1, 2]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not the temporary file's 0600
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = write_json_atomic(tmp_path / "x.json", {"old": True})

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"new": True})
    assert json.loads(Path(path).read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
