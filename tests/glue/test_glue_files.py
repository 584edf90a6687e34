"""Reading GLUE-layout TSV files: every task's layout, the real RTE and MRPC, and the errors."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from transformers_fine_tuning.tasks import load_glue_dir, read_glue_file, read_glue_rows, resolve_task_dir


def _at(path: Path) -> str:
    """A regex matching ``path`` literally."""
    return re.escape(str(path))


def test_cola_without_header(fixtures: Path) -> None:
    data = load_glue_dir("cola", fixtures / "CoLA")
    assert {split: data[split].num_rows for split in data} == {"train": 5, "validation": 3, "test": 2}
    assert data["train"].column_names == ["sentence", "label", "idx"]
    assert data["train"]["label"] == [1, 1, 0, 1, 0]
    assert data["train"][3] == {"sentence": 'He said "enough" and left.', "label": 1, "idx": 3}
    assert data["test"][1] == {"sentence": "The car honked its way down the road.", "label": -1, "idx": 1}


def test_sst2(fixtures: Path) -> None:
    data = load_glue_dir("sst2", fixtures)  # the GLUE root: the task's folder is SST-2
    assert data["train"]["label"] == [0, 0, 1, 1, 0]
    assert data["train"][3]["sentence"] == 'the " twist " is the best part of this warm film '
    assert data["validation"]["label"] == [1, 0]
    assert data["test"][0] == {"sentence": "uneasy mishmash of styles and genres .", "label": -1, "idx": 0}


def test_stsb_ten_columns_and_float_scores(fixtures: Path) -> None:
    data = load_glue_dir("stsb", fixtures)
    assert data["train"].column_names == ["sentence1", "sentence2", "label", "idx"]
    assert data["train"]["label"] == pytest.approx([5.0, 3.8, 3.8, 2.6])
    assert data["validation"][3]["sentence1"] == "A woman is playing the guitar."
    assert data["validation"][3]["sentence2"] == "A man is playing guitar."
    assert data["test"][0]["sentence2"] == "A girl is brushing her hair."
    assert data["test"][0]["label"] == -1.0


def test_qqp_skips_questions_broken_over_two_lines(fixtures: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        data = load_glue_dir("qqp", fixtures)
    assert data["train"]["label"] == [0, 1, 0, 1]
    assert data["train"]["idx"] == [0, 1, 2, 3]
    assert data["train"][3]["question1"] == "How can I be a good geologist?"
    assert "skipped 2 malformed row(s)" in caplog.text and "line(s) 5, 6" in caplog.text
    assert data["validation"]["label"] == [0, 0, 1]
    assert data["test"][0]["question2"].startswith("Why did Microsoft choose core m3")


def test_mnli_matched_and_mismatched(fixtures: Path) -> None:
    data = load_glue_dir("mnli", fixtures / "MNLI")
    assert list(data) == [
        "train",
        "validation_matched",
        "validation_mismatched",
        "test_matched",
        "test_mismatched",
    ]
    assert data["train"].column_names == ["premise", "hypothesis", "label", "idx"]
    assert data["train"]["label"] == [1, 0, 0, 0, 1, 0, 2]  # entailment 0, neutral 1, contradiction 2
    assert data["train"][0]["premise"].startswith("Conceptually cream skimming")
    assert data["validation_matched"]["label"] == [1, 2]  # gold_label, not label1
    assert data["validation_mismatched"][1]["premise"] == 'The "lady" said it was fine.'
    assert data["test_mismatched"][0] == {
        "premise": "What have you decided, what are you going to do?",
        "hypothesis": "So what's your decision?",
        "label": -1,
        "idx": 0,
    }


def test_qnli_and_wnli_label_encodings(fixtures: Path) -> None:
    qnli = load_glue_dir("qnli", fixtures)
    assert qnli["train"]["label"] == [1, 1, 0]
    assert qnli["train"].features["label"].int2str(0) == "entailment"
    wnli = load_glue_dir("wnli", fixtures)
    assert wnli["train"]["label"] == [1, 1, 1, 0]  # file "1" is entailment, the Hub's index 1
    assert wnli["train"].features["label"].int2str(wnli["validation"]["label"]) == [
        "not_entailment",
        "entailment",
    ]


def test_real_rte(shared_glue: Path) -> None:
    data = load_glue_dir("rte", shared_glue)
    assert {split: data[split].num_rows for split in data} == {"train": 2490, "validation": 277, "test": 3000}
    assert Counter(data["train"]["label"]) == {0: 1249, 1: 1241}
    assert Counter(data["validation"]["label"]) == {0: 146, 1: 131}
    assert set(data["test"]["label"]) == {-1}
    assert data["train"][0] == {
        "sentence1": "No Weapons of Mass Destruction Found in Iraq Yet.",
        "sentence2": "Weapons of Mass Destruction Found in Iraq.",
        "label": 1,
        "idx": 0,
    }
    assert data["test"]["idx"][-1] == 2999


def test_real_mrpc_with_byte_order_mark_and_literal_quotes(shared_glue: Path) -> None:
    data = load_glue_dir("mrpc", shared_glue / "MRPC")
    assert {split: data[split].num_rows for split in data} == {"train": 3668, "validation": 408, "test": 1725}
    assert Counter(data["train"]["label"]) == {1: 2474, 0: 1194}
    assert Counter(data["validation"]["label"]) == {1: 279, 0: 129}
    first = data["train"][0]
    assert first["sentence1"].startswith('Amrozi accused his brother, whom he called "the witness"')
    assert first["label"] == 1
    # A lone opening quote stays literal instead of swallowing the following rows.
    assert (
        data["validation"][0]["sentence2"]
        == '"The foodservice pie business does not fit our long-term growth strategy.'
    )


def test_read_glue_rows_returns_plain_dicts(shared_glue: Path) -> None:
    rows = read_glue_rows(shared_glue / "MRPC" / "dev.tsv", "mrpc", "validation")
    assert len(rows) == 408
    assert rows[1]["label"] == 0 and rows[1]["idx"] == 1
    assert rows[1]["sentence1"].startswith("Magnarelli said Racicot hated the Iraqi regime")


def test_resolve_task_dir_accepts_root_or_task_folder(fixtures: Path) -> None:
    assert resolve_task_dir("wnli", fixtures) == fixtures / "WNLI"
    assert resolve_task_dir("wnli", fixtures / "WNLI") == fixtures / "WNLI"


def test_missing_data_dir() -> None:
    with pytest.raises(FileNotFoundError, match=r"data_dir /nonexistent/glue is not a directory"):
        load_glue_dir("rte", "/nonexistent/glue")


def test_missing_dev_file_names_path_and_layout(tmp_path: Path) -> None:
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    expected = tmp_path / "RTE" / "dev.tsv"
    with pytest.raises(
        FileNotFoundError, match=rf"expected {_at(expected)} \(GLUE distribution layout: .* RTE/"
    ):
        load_glue_dir("rte", tmp_path)


def test_task_folder_without_files_names_train(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=rf"expected {_at(tmp_path / 'train.tsv')} .*train.tsv, dev.tsv, test.tsv",
    ):
        load_glue_dir("rte", tmp_path)


def test_test_file_is_optional(tmp_path: Path) -> None:
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\t1\n")
    assert list(load_glue_dir("wnli", tmp_path)) == ["train", "validation"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_wrong_number_of_columns_names_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tentailment\n"
    )
    with pytest.raises(ValueError, match=rf"{_at(path)}, line 3: expected 4 tab-separated columns, found 3"):
        read_glue_file(path, "rte", "validation")


def test_headerless_cola_row_with_wrong_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.tsv", "gj04\t1\t\tFine.\ngj04\t1\tToo few columns.\n")
    with pytest.raises(ValueError, match=rf"{_at(path)}, line 2: expected 4 tab-separated columns, found 3"):
        read_glue_file(path, "cola", "train")


def test_unknown_label_names_file_line_and_encoding(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "train.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\n2\t3\t4\tc\td\n"
    )
    with pytest.raises(
        ValueError,
        match=rf"{_at(path)}, line 3, column 'Quality': unknown label '2'; "
        r"expected one of '0' \(not_equivalent\), '1' \(equivalent\)",
    ):
        read_glue_file(path, "mrpc", "train")


def test_unknown_label_in_headerless_file_names_column_number(tmp_path: Path) -> None:
    path = _write(tmp_path / "dev.tsv", "gj04\tyes\t\tA sentence.\n")
    with pytest.raises(ValueError, match=rf"{_at(path)}, line 1, column 2: unknown label 'yes'"):
        read_glue_file(path, "cola", "validation")


def test_unparsable_score(tmp_path: Path) -> None:
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    path = _write(tmp_path / "train.tsv", header + "0\tg\tf\t2012\t1\tnone\tnone\ta\tb\tfive\n")
    with pytest.raises(
        ValueError,
        match=rf"{_at(path)}, line 2, column 'score': expected a float score, found 'five'",
    ):
        read_glue_file(path, "stsb", "train")


def test_header_lacking_a_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n")
    with pytest.raises(ValueError, match=rf"{_at(path)}, line 1: header .* lacks column\(s\) \['label'\]"):
        read_glue_file(path, "rte", "train")


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.tsv", "")
    with pytest.raises(ValueError, match=rf"{_at(path)} is empty"):
        read_glue_file(path, "sst2", "train")
