"""Loading a task from a GLUE-layout directory, from CSV/TSV/JSON files, or (offline here) the Hub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from datasets import Value

from transformers_fine_tuning.tasks import get_task, load_glue_dir, load_task_datasets, read_data_file


def _at(path: Path) -> str:
    """A regex matching ``path`` literally."""
    return re.escape(str(path))


def test_data_dir_is_the_glue_layout(fixtures: Path) -> None:
    data = load_task_datasets("sst-2", data_dir=fixtures)
    assert list(data) == ["train", "validation", "test"]
    assert data["train"]["label"] == [0, 0, 1, 1, 0]


def test_csv_jsonl_and_tsv_files(fixtures: Path, tmp_path: Path) -> None:
    files = fixtures / "files"
    data = load_task_datasets(
        "rte",
        train_file=files / "rte_train.csv",
        validation_file=files / "rte_dev.jsonl",
        test_file=files / "rte_test.tsv",
        cache_dir=tmp_path,
    )
    assert list(data) == ["train", "validation", "test"]
    for split in data.values():
        assert split.features == get_task("rte").features()
    train = data["train"]
    assert train["label"] == [1, 0, 0]  # label names mapped to the Hub's indices; "source" column dropped
    assert train["idx"] == [0, 1, 2]
    assert train[2]["sentence1"].endswith('the company said, "it will now be used earlier".')
    assert data["validation"]["label"] == [1, 0]
    assert data["validation"]["idx"] == [7, 8]  # kept from the file
    assert data["test"]["label"] == [-1, -1]
    # TSV files are read without quoting, as GLUE files are.
    assert data["test"][1]["sentence1"].startswith('"Authorities in Brazil')


def test_regression_scores_from_json_and_csv(fixtures: Path, tmp_path: Path) -> None:
    files = fixtures / "files"
    data = load_task_datasets(
        "stsb",
        train_file=files / "stsb_train.json",
        validation_file=files / "stsb_dev.csv",
        cache_dir=tmp_path,
    )
    assert data["train"].features["label"] == Value("float32")
    assert data["train"]["label"] == pytest.approx([5.0, 3.8, 2.0])
    assert data["validation"]["label"] == pytest.approx([5.0, 2.4])


def test_mnli_files_fill_the_first_evaluation_and_test_splits(tmp_path: Path) -> None:
    rows = (
        "premise,hypothesis,label\nA man sleeps.,Nobody sleeps.,contradiction\nA man sleeps.,A man rests.,0\n"
    )
    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "test.csv").write_text("premise,hypothesis\nA dog barks.,An animal makes noise.\n")
    data = load_task_datasets(
        "mnli",
        train_file=tmp_path / "train.csv",
        validation_file=tmp_path / "train.csv",
        test_file=tmp_path / "test.csv",
        cache_dir=tmp_path / "cache",
    )
    assert list(data) == ["train", "validation_matched", "test_matched"]
    assert data["validation_matched"]["label"] == [2, 0]
    assert data["validation_matched"].features["label"].names == ["entailment", "neutral", "contradiction"]


def test_the_same_data_from_any_source(shared_glue: Path, tmp_path: Path) -> None:
    from_dir = load_glue_dir("rte", shared_glue)
    train = from_dir["train"].select(range(40))
    validation = from_dir["validation"]
    # JSON lines with integer labels, and CSV with label names and without idx.
    train.to_json(tmp_path / "train.jsonl")
    named = validation.map(lambda row: {"label": validation.features["label"].int2str(row["label"])})
    named.cast_column("label", Value("string")).remove_columns("idx").to_csv(
        tmp_path / "dev.csv", index=False
    )
    from_files = load_task_datasets(
        "rte", train_file=tmp_path / "train.jsonl", validation_file=tmp_path / "dev.csv", cache_dir=tmp_path
    )
    assert from_files["train"].to_list() == train.to_list()
    assert from_files["validation"].to_list() == validation.to_list()
    assert from_files["validation"].features == validation.features


def test_missing_column_names_file_found_and_expected(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("premise,hypothesis,label\na,b,entailment\n")
    with pytest.raises(
        ValueError,
        match=rf"{_at(path)}: missing column\(s\) \['sentence1', 'sentence2'\]; found columns "
        r"\['premise', 'hypothesis', 'label'\], expected \['sentence1', 'sentence2', 'label'\]",
    ):
        read_data_file("rte", path, "train", cache_dir=tmp_path / "cache")


def test_label_column_is_required_outside_test(tmp_path: Path) -> None:
    path = tmp_path / "dev.jsonl"
    path.write_text('{"sentence": "fine"}\n')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label'\]"):
        read_data_file("sst2", path, "validation", cache_dir=tmp_path / "cache")
    assert read_data_file("sst2", path, "test", cache_dir=tmp_path / "cache")["label"] == [-1]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (
            '"positive"',
            r"row 2: unknown label 'positive'; expected a label name or index: 0 = 'entailment', 1 = ",
        ),
        ("2", r"row 2: label 2 is not a valid class; expected a label name or index"),
        ('"7"', r"row 2: label 7 is not a valid class"),
        ("-1", r"row 2: label -1 is not a valid class"),
        ("1.5", r"row 2: label 1\.5 is not a valid class"),
        ("null", r"row 2: the label is empty; only a test file may have unlabelled rows"),
    ],
)
def test_bad_labels_name_file_and_row(tmp_path: Path, label: str, message: str) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"sentence1": "a", "sentence2": "b", "label": 0}\n'
        f'{{"sentence1": "c", "sentence2": "d", "label": {label}}}\n'
    )
    with pytest.raises(ValueError, match=rf"{_at(path)}, {message}"):
        read_data_file("rte", path, "train", cache_dir=tmp_path / "cache")


def test_bad_score(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"sentence1": "a", "sentence2": "b", "label": "high"}\n')
    with pytest.raises(
        ValueError, match=rf"{_at(path)}, row 1: expected a float score as label, found 'high'"
    ):
        read_data_file("stsb", path, "train", cache_dir=tmp_path / "cache")


def test_empty_text(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("sentence,label\ngood,1\n,0\n")
    with pytest.raises(ValueError, match=rf"{_at(path)}, row 2: column 'sentence' is empty"):
        read_data_file("sst2", path, "train", cache_dir=tmp_path / "cache")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"data file {_at(tmp_path / 'nope.csv')} does not exist"):
        read_data_file("rte", tmp_path / "nope.csv", "train")
    parquet = tmp_path / "train.parquet"
    parquet.write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"unsupported file type '\.parquet'; use one of \.csv, \.tsv, \.json, \.jsonl"
    ):
        read_data_file("rte", parquet, "train")


def test_source_arguments_are_checked(fixtures: Path) -> None:
    with pytest.raises(ValueError, match=r"pass either data_dir .* not both"):
        load_task_datasets("rte", data_dir=fixtures, train_file=fixtures / "files" / "rte_train.csv")
    with pytest.raises(ValueError, match=r"pass both train_file and validation_file"):
        load_task_datasets("rte", train_file=fixtures / "files" / "rte_train.csv")


def test_unreachable_hub_says_to_pass_data_dir(tmp_path: Path) -> None:
    with pytest.raises(
        ConnectionError, match=r"could not load GLUE task 'rte' from the Hugging Face Hub"
    ) as error:
        load_task_datasets("RTE", cache_dir=tmp_path)
    assert "pass --data_dir (data_dir) pointing at a GLUE-layout directory" in str(error.value)
    assert "holding RTE/" in str(error.value)
