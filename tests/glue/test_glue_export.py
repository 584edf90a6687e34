"""Writing the GLUE layout (the inverse of the reader), building it from a (fake) Hub, and finding it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from transformers_fine_tuning.tasks import GLUE_TASKS, get_task, load_glue_dir
from transformers_fine_tuning.tasks.glue import export as export_module
from transformers_fine_tuning.tasks.glue.export import export_hub_glue, find_glue_dir, write_glue_dir

# Rows per split of each task's source: the hand-written fixtures, and the real RTE and MRPC.
ROWS = {
    "cola": {"train": 5, "validation": 3, "test": 2},
    "sst2": {"train": 5, "validation": 2, "test": 1},
    "mrpc": {"train": 3668, "validation": 408, "test": 1725},
    "qqp": {"train": 4, "validation": 3, "test": 1},
    "stsb": {"train": 4, "validation": 4, "test": 1},
    "mnli": {
        "train": 7,
        "validation_matched": 2,
        "validation_mismatched": 3,
        "test_matched": 1,
        "test_mismatched": 1,
    },
    "qnli": {"train": 3, "validation": 2, "test": 1},
    "rte": {"train": 2490, "validation": 277, "test": 3000},
    "wnli": {"train": 4, "validation": 2, "test": 1},
}
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


def assert_same_data(expected: DatasetDict, actual: DatasetDict) -> None:
    """Same splits in the same order, same features, same rows (texts, label, idx)."""
    assert list(actual) == list(expected)
    for split in expected:
        assert actual[split].features == expected[split].features, split
        assert actual[split].to_list() == expected[split].to_list(), split


def source_of(task: str, request: pytest.FixtureRequest) -> Path:
    """The GLUE root holding ``task``: the real data for RTE and MRPC, the fixtures for the others."""
    fixture = "shared_glue" if task in ("rte", "mrpc") else "fixtures"
    return request.getfixturevalue(fixture)


def rows_dataset(task: str, rows: list[dict[str, Any]]) -> Dataset:
    """A split built in code, with the task's Hub features."""
    return Dataset.from_list(rows, features=get_task(task).features())


def make_glue_root(root: Path, tasks: tuple[str, ...] = ("rte", "mrpc")) -> Path:
    """A GLUE root whose tasks have (empty) train and evaluation files: all that ``find_glue_dir`` looks at."""
    for name in tasks:
        task = get_task(name)
        (root / task.folder).mkdir(parents=True, exist_ok=True)
        for split in ("train", *task.eval_splits):
            (root / task.folder / task.file_for(split).filename).touch()
    return root


@pytest.mark.parametrize("task", list(GLUE_TASKS))
def test_round_trip_of_every_task(task: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    original = load_glue_dir(task, source_of(task, request))
    assert {split: original[split].num_rows for split in original} == ROWS[task]
    assert list(original) == list(get_task(task).splits)  # every split, test files included

    task_dir = write_glue_dir(task, original, tmp_path)

    assert task_dir == tmp_path / get_task(task).folder
    assert_same_data(original, load_glue_dir(task, tmp_path))


def test_written_layouts_follow_the_table(fixtures: Path, shared_glue: Path, tmp_path: Path) -> None:
    write_glue_dir("cola", load_glue_dir("cola", fixtures), tmp_path)
    write_glue_dir("mrpc", load_glue_dir("mrpc", shared_glue), tmp_path)
    write_glue_dir("stsb", load_glue_dir("stsb", fixtures), tmp_path)

    cola_train = (tmp_path / "CoLA" / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert cola_train[0] == "\t1\t\tOur friends won't buy this analysis, let alone the next one we propose."
    assert len(cola_train) == 5  # no header: 4 columns, label at index 1, sentence at index 3
    assert (tmp_path / "CoLA" / "test.tsv").read_text(encoding="utf-8").splitlines()[0] == "sentence"

    mrpc_dev = (tmp_path / "MRPC" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    assert mrpc_dev[0] == "#1 String\t#2 String\tQuality"
    assert len(mrpc_dev) == 1 + 408
    assert [line.rsplit("\t", 1)[1] for line in mrpc_dev[1:]].count("1") == 279  # paraphrases on MRPC dev
    assert (tmp_path / "MRPC" / "test.tsv").read_text(encoding="utf-8").splitlines()[
        0
    ] == "#1 String\t#2 String"

    stsb = (tmp_path / "STS-B" / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert [line.rsplit("\t", 1)[1] for line in stsb] == ["score", "5.0", "3.8", "3.8", "2.6"]
    assert load_glue_dir("stsb", tmp_path)["train"]["label"] == list(np.float32([5.0, 3.8, 3.8, 2.6]))


def test_tabs_and_line_breaks_become_spaces(tmp_path: Path) -> None:
    rows = [
        {"sentence1": "a\tb", "sentence2": "line one\nline two", "label": 0, "idx": 0},
        {"sentence1": "windows\r\nbreak", "sentence2": "plain", "label": 1, "idx": 1},
    ]
    write_glue_dir("rte", DatasetDict({"train": rows_dataset("rte", rows)}), tmp_path)

    lines = (tmp_path / "RTE" / "train.tsv").read_bytes().split(b"\n")
    assert lines == [
        b"sentence1\tsentence2\tlabel",
        b"a b\tline one line two\tentailment",
        b"windows  break\tplain\tnot_entailment",
        b"",
    ]


def test_test_files_carry_no_label_and_labelled_files_refuse_minus_one(tmp_path: Path) -> None:
    rows = [{"sentence1": "a", "sentence2": "b", "label": 1, "idx": 0}]
    write_glue_dir("rte", DatasetDict({"test": rows_dataset("rte", rows)}), tmp_path)
    assert (tmp_path / "RTE" / "test.tsv").read_text(encoding="utf-8") == "sentence1\tsentence2\na\tb\n"

    unlabelled = DatasetDict({"validation": rows_dataset("rte", [{**rows[0], "label": -1}])})
    with pytest.raises(ValueError, match=r"split 'validation', row 0: label -1 cannot be written"):
        write_glue_dir("rte", unlabelled, tmp_path)
    assert sorted(path.name for path in (tmp_path / "RTE").iterdir()) == ["test.tsv"]  # nothing half-written


def test_a_split_the_task_lacks_is_refused(tmp_path: Path) -> None:
    rows = [{"sentence1": "a", "sentence2": "b", "label": 1, "idx": 0}]
    with pytest.raises(ValueError, match="has no split 'validation_matched'"):
        write_glue_dir("rte", DatasetDict({"validation_matched": rows_dataset("rte", rows)}), tmp_path)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``datasets.load_dataset`` as ``loading`` calls it, answering from ``hub[config]``; calls are recorded."""
    hub: dict[str, Any] = {"calls": []}

    def load_dataset(path: str, name: str, cache_dir: Any = None) -> DatasetDict:
        hub["calls"].append((path, name))
        return hub[name]

    monkeypatch.setattr("transformers_fine_tuning.tasks.glue.loading.datasets.load_dataset", load_dataset)
    return hub


def test_export_hub_glue_writes_what_loads_back(
    fake_hub: dict[str, Any], shared_glue: Path, tmp_path: Path
) -> None:
    fake_hub["rte"] = load_glue_dir("rte", shared_glue)

    root = export_hub_glue(["rte"], tmp_path / "glue")

    assert root == tmp_path / "glue"
    assert fake_hub["calls"] == [("nyu-mll/glue", "rte")]
    assert sorted(path.name for path in (root / "RTE").iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]
    assert_same_data(fake_hub["rte"], load_glue_dir("rte", root))


@pytest.fixture
def glue_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TFT_GLUE_DIR; the cache under ``tmp_path/cache``. Returns the GLUE cache directory."""
    monkeypatch.delenv("TFT_GLUE_DIR", raising=False)
    monkeypatch.setenv("TFT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "glue"


def test_tft_glue_dir_beats_candidates(
    glue_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = make_glue_root(tmp_path / "chosen")
    monkeypatch.setenv("TFT_GLUE_DIR", str(chosen))
    assert find_glue_dir([make_glue_root(tmp_path / "candidate")]) == chosen


def test_a_wrong_tft_glue_dir_is_an_error(
    glue_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    only_rte = make_glue_root(tmp_path / "only_rte", ("rte",))
    monkeypatch.setenv("TFT_GLUE_DIR", str(only_rte))
    with pytest.raises(FileNotFoundError, match=r"TFT_GLUE_DIR=.*only_rte.*MRPC/train\.tsv"):
        find_glue_dir([make_glue_root(tmp_path / "candidate")])
    # a task's own folder is not a GLUE root, although it has a train.tsv and a dev.tsv like every task
    monkeypatch.setenv("TFT_GLUE_DIR", str(only_rte / "RTE"))
    with pytest.raises(FileNotFoundError, match=r"RTE/RTE/train\.tsv"):
        find_glue_dir(tasks=("rte",))


def test_a_candidate_lacking_a_task_is_passed_over(glue_env: Path, tmp_path: Path) -> None:
    only_rte = make_glue_root(tmp_path / "only_rte", ("rte",))
    both = make_glue_root(tmp_path / "both")
    assert find_glue_dir([tmp_path / "missing", only_rte, both]) == both
    assert find_glue_dir([only_rte], tasks=("rte",)) == only_rte


def test_every_evaluation_file_is_needed(glue_env: Path, tmp_path: Path) -> None:
    root = make_glue_root(tmp_path / "glue", ("mnli",))
    assert find_glue_dir([root], tasks=("mnli",)) == root
    (root / "MNLI" / "dev_mismatched.tsv").unlink()
    assert find_glue_dir([root], tasks=("mnli",)) is None


def test_the_cache_is_used_when_it_holds_the_data(glue_env: Path, tmp_path: Path) -> None:
    make_glue_root(glue_env)
    assert find_glue_dir([make_glue_root(tmp_path / "only_mrpc", ("mrpc",))]) == glue_env


def test_the_cache_follows_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TFT_GLUE_DIR", "TFT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = make_glue_root(tmp_path / "xdg" / "transformers-fine-tuning" / "glue")
    assert find_glue_dir() == cache


def test_nothing_found_and_no_build_is_none(glue_env: Path, fake_hub: dict[str, Any], tmp_path: Path) -> None:
    assert find_glue_dir([tmp_path / "missing", make_glue_root(tmp_path / "only_rte", ("rte",))]) is None
    assert fake_hub["calls"] == []  # the Hub is not asked
    assert not glue_env.exists()


def test_build_fills_the_cache_from_the_hub(glue_env: Path, fake_hub: dict[str, Any]) -> None:
    pair = {"sentence1": "A man sleeps.", "sentence2": "Someone sleeps."}
    fake_hub["rte"] = DatasetDict(
        {
            "train": rows_dataset("rte", [{**pair, "label": 0, "idx": 0}, {**pair, "label": 1, "idx": 1}]),
            "validation": rows_dataset("rte", [{**pair, "label": 1, "idx": 0}]),
        }
    )
    fake_hub["mrpc"] = DatasetDict(
        {split: rows_dataset("mrpc", [{**pair, "label": 1, "idx": 0}]) for split in ("train", "validation")}
    )

    assert find_glue_dir(build=True) == glue_env

    assert fake_hub["calls"] == [("nyu-mll/glue", "rte"), ("nyu-mll/glue", "mrpc")]
    assert_same_data(fake_hub["rte"], load_glue_dir("rte", glue_env))
    assert_same_data(fake_hub["mrpc"], load_glue_dir("mrpc", glue_env))
    assert find_glue_dir() == glue_env  # found in the cache now, without building again
    assert len(fake_hub["calls"]) == 2


def test_command_line_writes_the_layout(
    fake_hub: dict[str, Any], shared_glue: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_hub["rte"] = load_glue_dir("rte", shared_glue)
    fake_hub["mrpc"] = load_glue_dir("mrpc", shared_glue)

    # offline (tests/glue/conftest.py): no probe; datasets would answer from its cache
    assert export_module.main(["--output_dir", str(tmp_path)]) == 0

    assert capsys.readouterr().out == f"{tmp_path}\n"
    assert fake_hub["calls"] == [("nyu-mll/glue", "rte"), ("nyu-mll/glue", "mrpc")]
    assert load_glue_dir("mrpc", tmp_path)["train"].num_rows == 3668


def test_command_line_on_a_failed_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> DatasetDict:
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr("transformers_fine_tuning.tasks.glue.loading.datasets.load_dataset", unreachable)
    assert export_module.main(["wnli", "--output_dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert "OfflineModeIsEnabled" in captured.err and "TFT_GLUE_DIR" in captured.err
    assert not (tmp_path / "WNLI").exists()


def test_command_line_fails_at_once_on_an_unreachable_hub(tmp_path: Path) -> None:
    drop = {*PROXY_VARIABLES, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    command = [
        sys.executable,
        "-m",
        "transformers_fine_tuning.tasks.glue.export",
        "rte",
        "--output_dir",
        str(tmp_path),
    ]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "http://127.0.0.1:9" in lines[0] and "TFT_GLUE_DIR" in lines[0]
    assert list(tmp_path.iterdir()) == []
