"""The fine-tune job on data of your own, end to end with the packaged pretrained MiniLM, as a subprocess: a
3-class CSV learnt beyond its majority baseline, a regression JSON-lines file, a ``save_to_disk`` directory,
sentence pairs found in the data; and the bad-label cases, each stopped before training with one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from datasets import ClassLabel, DatasetDict, load_dataset

from test_fine_tune_script import QUICK, _error_line, assert_ok, fine_tune, results_of

SENTIMENT = Path(__file__).parent / "data" / "sentiment"


def minilm(minilm_path: str, *flags: str) -> list[str]:
    """The job's flags for a short run of the MiniLM (sequences of at most 32 tokens)."""
    return ["--model_name_or_path", minilm_path, "--max_seq_length", "32", *QUICK, *flags]


def test_three_class_csv_beats_its_constant_baseline(tmp_path, minilm_path):
    """90 hand-made reviews whose adjective decides the class; 3 epochs (36 steps, about 30 s on 2 cores)."""
    out = tmp_path / "sentiment"
    process = fine_tune(
        *minilm(minilm_path, "--train_file", str(SENTIMENT / "train.csv"),
                "--validation_file", str(SENTIMENT / "validation.csv"), "--num_train_epochs", "3",
                "--learning_rate", "1e-4", "--seed", "0", "--save_final_model", "true", "--output_dir", str(out)),
    )  # fmt: skip
    assert_ok(process)
    results = results_of(out)
    assert results["task"] == "sentiment"  # named from the data: the training file's directory
    assert results["arguments"]["data"]["task_name"] == "sentiment"
    assert results["task_info"] == {
        "kind": "custom",
        "regression": False,
        "label_names": ["negative", "neutral", "positive"],
        "text_columns": ["text"],
    }
    assert results["num_examples"] == {"train": 90, "validation": 45} and results["global_step"] == 36
    # 15 of each class in the dev set; a tie in training (30 each) goes to the first class, negative:
    # accuracy 1/3, its F1 2·(1/3)/(1/3 + 1) = 1/2, macro-F1 (1/2 + 0 + 0)/3
    baseline = results["constant_baseline"]["validation"]
    assert baseline == pytest.approx({"accuracy": 1 / 3, "f1_macro": 1 / 6})
    metrics = results["metrics"]["validation"]
    assert results["main_metric"] == {"name": "accuracy", "split": "validation", "value": metrics["accuracy"]}
    assert metrics["accuracy"] > 0.8 and metrics["f1_macro"] > 0.8 and results["failed"] is False
    per_class = results["per_class_f1"]["validation"]
    assert list(per_class) == ["negative", "neutral", "positive"]
    assert sum(per_class.values()) / 3 == pytest.approx(metrics["f1_macro"])  # every class is in the dev set
    labels = ["negative", "neutral", "positive"]
    dev = [line.rsplit(",", 1)[1] for line in (SENTIMENT / "validation.csv").read_text().splitlines()[1:]]
    predictions = results["predictions"]["validation"]
    assert sum(labels[p] == y for p, y in zip(predictions, dev, strict=True)) / 45 == metrics["accuracy"]
    config = json.loads((out / "config.json").read_text())  # the saved model reads its classes by name
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}


def test_regression_on_a_json_lines_file(tmp_path, minilm_path):
    random.seed(0)
    words = ["good", "bad", "fine", "nice", "poor"]

    def rows(n: int) -> str:
        sampled = [random.choices(words, k=4) for _ in range(n)]
        return "".join(
            json.dumps({"review": " ".join(ws), "stars": ws.count("good") + ws.count("nice") + 0.5}) + "\n"
            for ws in sampled
        )

    (tmp_path / "train.jsonl").write_text(rows(40))
    (tmp_path / "dev.jsonl").write_text(rows(16))
    out = tmp_path / "stars"
    process = fine_tune(
        *minilm(minilm_path, "--task_name", "stars", "--train_file", str(tmp_path / "train.jsonl"),
                "--validation_file", str(tmp_path / "dev.jsonl"), "--label_column", "stars",
                "--output_dir", str(out)),
    )  # fmt: skip
    assert_ok(process)
    results = results_of(out)
    assert results["task"] == "stars" and results["global_step"] == 5
    assert results["task_info"] == {
        "kind": "custom",
        "regression": True,
        "label_names": [],
        "text_columns": ["review"],
    }
    metrics = results["metrics"]["validation"]
    assert {"pearson", "spearmanr"} <= set(metrics) and results["main_metric"]["name"] == "pearson"
    # the constant prediction (the training mean) has no correlation
    assert results["constant_baseline"]["validation"] == {"pearson": 0.0, "spearmanr": 0.0}
    assert results["failed"] == (metrics["pearson"] <= 0.0) and results["per_class_f1"] == {}
    predictions = results["predictions"]["validation"]
    assert len(predictions) == 16 and all(isinstance(value, float) for value in predictions)


def test_a_save_to_disk_directory_evaluated_on_its_test_split(tmp_path, minilm_path):
    files = {"train": str(SENTIMENT / "train.csv"), "test": str(SENTIMENT / "validation.csv")}
    loaded = load_dataset("csv", data_files=files, cache_dir=str(tmp_path / "cache"))
    names = ["positive", "negative", "neutral"]  # a ClassLabel's own order, not sorted: it is kept
    saved = DatasetDict(
        {
            split: dataset.cast_column("label", ClassLabel(names=names)).rename_column("text", "review")
            for split, dataset in loaded.items()
        }
    )
    saved.save_to_disk(tmp_path / "reviews")
    out = tmp_path / "out"
    process = fine_tune(
        *minilm(minilm_path, "--dataset_name", str(tmp_path / "reviews"), "--validation_split_name", "test",
                "--max_train_samples", "32", "--output_dir", str(out)),
    )  # fmt: skip
    assert_ok(process)
    results = results_of(out)
    assert results["task"] == "reviews" and results["task_info"]["label_names"] == names
    assert results["task_info"]["text_columns"] == ["review"]
    assert results["num_examples"] == {"train": 32, "test": 45}
    assert results["main_metric"]["split"] == "test" and set(results["metrics"]) == {"test"}
    assert set(results["metrics"]["test"]) >= {"accuracy", "f1_macro"}
    assert set(results["constant_baseline"]) == {"test"}


def test_sentence_pairs_found_in_the_data_with_matthews_on_request(tmp_path, minilm_path):
    random.seed(1)
    nouns = ["cat", "dog", "bird", "horse", "fish", "cow"]
    lines = ["id,premise,hypothesis,label"]
    for row in range(32):
        a, b = random.sample(nouns, 2)
        same = row % 2 == 0
        lines.append(f"{row},the {a} sleeps,{'a' if same else 'the'} {a if same else b} is asleep,{same}")
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "pairs"
    process = fine_tune(
        *minilm(minilm_path, "--task_name", "pairs", "--train_file", str(tmp_path / "pairs.csv"),
                "--validation_file", str(tmp_path / "pairs.csv"), "--main_metric", "matthews_correlation",
                "--output_dir", str(out)),
    )  # fmt: skip
    assert_ok(process)
    results = results_of(out)
    assert results["task_info"]["text_columns"] == ["premise", "hypothesis"]
    assert results["task_info"]["label_names"] == ["False", "True"]  # booleans, in order
    assert "text column(s) ['premise', 'hypothesis'] taken from" in process.stderr  # a guess, said so
    metrics = results["metrics"]["validation"]
    assert {"accuracy", "f1", "matthews_correlation"} <= set(metrics)
    assert results["main_metric"] == {
        "name": "matthews_correlation",
        "split": "validation",
        "value": metrics["matthews_correlation"],
    }
    assert results["constant_baseline"]["validation"]["matthews_correlation"] == 0.0
    assert results["failed"] == (metrics["matthews_correlation"] <= 0.0)


@pytest.mark.parametrize(
    ("train", "dev", "where", "message"),
    [
        (
            "text,label\nfine,pos\nawful,neg\nokay,pos\n",
            "text,label\ngreat,pos\nmeh,neutral\n",
            "dev, row 2",
            "label 'neutral' does not occur in the training data",
        ),
        (
            "text,label\nfine,pos\ngreat,pos\n",
            "text,label\nbad,neg\n",
            "train",
            "every training label is 'pos' (2 rows): a classifier needs examples of at least two classes",
        ),
        (
            "text,label\nfine,pos\nawful,neg\nokay,2\n",
            "text,label\ngreat,pos\n",
            "train, row 3",
            "the label column 'label' mixes kinds. Write every label as a name",
        ),
    ],
)
def test_bad_labels_stop_before_training_with_the_file_row_and_fix(
    tmp_path, minilm_path, train, dev, where, message
):
    (tmp_path / "train.csv").write_text(train)
    (tmp_path / "dev.csv").write_text(dev)
    process = fine_tune(
        *minilm(minilm_path, "--task_name", "mine", "--train_file", str(tmp_path / "train.csv"),
                "--validation_file", str(tmp_path / "dev.csv"), "--output_dir", str(tmp_path / "out")),
    )  # fmt: skip
    line = _error_line(process)
    assert [text for text in process.stderr.splitlines() if "error" in text] == [line]  # one line
    file, _, row = where.partition(", ")
    assert f"{tmp_path / file}.csv{', ' + row if row else ''}: " in line and message in line
    assert not (tmp_path / "out" / "results.json").exists()


def test_own_data_flags_with_a_glue_task_name_are_refused(tmp_path, minilm_path):
    line = _error_line(
        fine_tune(*minilm(minilm_path, "--task_name", "sst2", "--train_file", str(SENTIMENT / "train.csv"),
                          "--validation_file", str(SENTIMENT / "validation.csv"), "--text_column", "text",
                          "--output_dir", str(tmp_path)))
    )  # fmt: skip
    assert "--text_column describe(s) a data set of your own, but --task_name sst2 is the GLUE task" in line
    assert "--task_name my-sst2" in line
