"""Read GLUE tasks from the original distribution layout (the TSV files of GLUE's ``download_glue_data.py``).

The files are tab-separated with **no quoting**: quote characters inside sentences are literal, and reading
them with CSV quoting merges rows silently (MRPC train reads as 3571 rows instead of 3668). MRPC files start
with a UTF-8 byte-order mark, hence ``encoding="utf-8-sig"``. Rows come out with the Hub's column names,
label encoding (``-1`` for unlabelled test rows) and a 0-based ``idx``, so that a local copy and the Hub
export of a task are interchangeable.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from ...textfiles import check_text_file
from .table import GlueFile, GlueTask, get_task

logger = logging.getLogger(__name__)


def _layout(task: GlueTask) -> str:
    """A one-line description of where the task's files are expected, for error messages."""
    names = ", ".join(file.filename for file in task.files)
    return (
        f"GLUE distribution layout: data_dir is either the GLUE root holding {task.folder}/ or the "
        f"{task.folder} folder itself, with {names} (test files optional), as written by GLUE's "
        "download_glue_data.py"
    )


def resolve_task_dir(task: str | GlueTask, data_dir: str | Path) -> Path:
    """The folder holding ``task``'s files: ``data_dir/<folder>`` if it exists (GLUE root), else ``data_dir``.

    ``<folder>`` is the task's canonical GLUE folder name (``RTE``, ``SST-2``...).
    """
    task = get_task(task)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} is not a directory ({_layout(task)})")
    task_dir = data_dir / task.folder
    return task_dir if task_dir.is_dir() else data_dir


def _column_indices(header: list[str], file: GlueFile, path: Path) -> tuple[list[int], int | None]:
    """Positions of the text and label columns, found by name in the header line."""
    wanted = [*file.text_columns, *([] if file.label_column is None else [file.label_column])]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ValueError(
            f"{path}, line 1: header {header} lacks column(s) {missing}; expected a header with {wanted} "
            f"(is this the {file.split} file of the right task?)"
        )
    text = [header.index(name) for name in file.text_columns]
    return text, None if file.label_column is None else header.index(file.label_column)


def _parse_label(task: GlueTask, value: str, where: str) -> int | float:
    """The Hub encoding of a label as written in a GLUE file: class index, or float score for STS-B."""
    if task.file_labels is None:
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f"{where}: expected a float score, found {value!r}") from None
        if not math.isfinite(score):
            raise ValueError(f"{where}: the score {value!r} is not a finite number; fix or drop the row")
        return score
    try:
        return task.file_labels.index(value)
    except ValueError:
        encoding = ", ".join(
            f"{code!r} ({name})" for code, name in zip(task.file_labels, task.label_names, strict=True)
        )
        raise ValueError(f"{where}: unknown label {value!r}; expected one of {encoding}") from None


def _layout_of_rows(
    reader: Any, task: GlueTask, file: GlueFile, path: Path
) -> tuple[list[int], int | None, int]:
    """Positions of the text and label columns, and the column count; reads the header if ``file`` has one."""
    if not file.has_header:
        return list(file.text_columns), file.label_column, file.num_columns
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path} is empty; expected a header line and rows ({_layout(task)})")
    text_indices, label_index = _column_indices(header, file, path)
    return text_indices, label_index, len(header)


def read_glue_rows(path: str | Path, task: str | GlueTask, split: str) -> list[dict[str, Any]]:
    """Read one GLUE-layout TSV file into row dicts with the Hub's columns: texts, ``label``, ``idx``.

    ``split`` says which of the task's files this is (test files are laid out differently). A row with the
    wrong number of columns, an unknown label or an unparsable score raises a ``ValueError`` naming the
    file and the 1-based line; for QQP only, rows with the wrong number of columns are skipped with a
    warning (see :attr:`GlueTask.skip_malformed_rows`). ``idx`` numbers the rows kept, from 0.
    """
    task = get_task(task)
    file = task.file_for(split)
    path = Path(path)
    check_text_file(path)
    rows: list[dict[str, Any]] = []
    skipped: list[int] = []
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
        text_indices, label_index, num_columns = _layout_of_rows(reader, task, file, path)
        label_column = (
            f"column {file.label_column + 1}"
            if isinstance(file.label_column, int)
            else f"column {file.label_column!r}"
        )
        for fields in reader:
            where = f"{path}, line {reader.line_num}"
            if len(fields) != num_columns:
                if task.skip_malformed_rows:
                    skipped.append(reader.line_num)
                    continue
                raise ValueError(
                    f"{where}: expected {num_columns} tab-separated columns, found {len(fields)} (GLUE files "
                    "are read without quoting: a stray tab or line break in a sentence breaks a row)"
                )
            texts = zip(task.text_columns, text_indices, strict=True)
            row: dict[str, Any] = {name: fields[index] for name, index in texts}
            row["label"] = (
                -1
                if label_index is None
                else _parse_label(task, fields[label_index], f"{where}, {label_column}")
            )
            row["idx"] = len(rows)
            rows.append(row)
    if not rows:
        raise ValueError(
            f"{path} holds no rows{' (only its header)' if file.has_header else ''}: a split needs examples"
        )
    if skipped:
        logger.warning(
            "%s: skipped %d malformed row(s) with a number of columns other than %d, at line(s) %s",
            path,
            len(skipped),
            num_columns,
            ", ".join(map(str, skipped)),
        )
    return rows


def read_glue_file(path: str | Path, task: str | GlueTask, split: str) -> Dataset:
    """Read one GLUE-layout TSV file into a ``Dataset`` with the Hub's columns and features."""
    task = get_task(task)
    return Dataset.from_list(read_glue_rows(path, task, split), features=task.features())


def load_glue_dir(task: str | GlueTask, data_dir: str | Path) -> DatasetDict:
    """Load a task from a GLUE-layout directory into a ``DatasetDict`` keyed by the Hub's split names.

    ``data_dir`` is the GLUE root (holding ``RTE/``, ``MRPC/``...) or the task's folder itself. The
    splits are ``train``, the task's evaluation splits (``validation``; MNLI ``validation_matched`` and
    ``validation_mismatched``) and the test splits whose files exist. A missing train or dev file raises
    ``FileNotFoundError`` naming the expected path.
    """
    task = get_task(task)
    task_dir = resolve_task_dir(task, data_dir)
    splits: dict[str, Dataset] = {}
    for file in task.files:
        path = task_dir / file.filename
        if path.is_file():
            splits[file.split] = read_glue_file(path, task, file.split)
        elif file.split not in task.test_splits:
            raise FileNotFoundError(f"expected {path} ({_layout(task)})")
    return DatasetDict(splits)
