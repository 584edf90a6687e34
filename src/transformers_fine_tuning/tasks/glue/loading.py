"""Load a GLUE task from a GLUE-layout directory, from CSV/TSV/JSON files, or from the Hugging Face Hub.

Whatever the source, the result has the same splits, columns and label encoding as the Hub dataset
``nyu-mll/glue``: the task's text columns, ``label`` (class index, ``-1`` when unlabelled; float score for
STS-B) and ``idx``. Training code can therefore ignore where the data came from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

from ..data_files import is_missing, read_table
from .files import load_glue_dir
from .table import HUB_DATASET, GlueTask, get_task


def load_task_datasets(
    task: str | GlueTask,
    *,
    data_dir: str | Path | None = None,
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    test_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> DatasetDict:
    """Load ``task``'s splits from the first source given: ``data_dir``, data files, else the Hub.

    Args:
        task: a GLUE task name (``"rte"``, ``"SST-2"``...) or a :class:`GlueTask`.
        data_dir: a directory in the GLUE distribution layout (the GLUE root or the task's folder); see
            :func:`load_glue_dir`.
        train_file, validation_file, test_file: CSV, TSV (no quoting), JSON or JSON-lines files with the
            task's text columns (Hub names, e.g. ``sentence1``/``sentence2``) and a ``label`` column
            holding label names or class indices (STS-B: float scores). Train and validation are both
            required; the test file may lack ``label``. The validation file becomes the task's first
            evaluation split (MNLI: ``validation_matched``), the test file its first test split.
        cache_dir: the ``datasets`` cache used when reading data files or downloading from the Hub.

    Returns:
        A ``DatasetDict`` keyed by the Hub's split names, with the Hub's columns and features.
    """
    task = get_task(task)
    data_files = {
        "train": train_file,
        task.eval_splits[0]: validation_file,
        task.test_splits[0]: test_file,
    }
    given = {split: path for split, path in data_files.items() if path is not None}
    if data_dir is not None:
        if given:
            raise ValueError(
                "pass either data_dir (a GLUE-layout directory) or train_file/validation_file/test_file, "
                "not both"
            )
        return load_glue_dir(task, data_dir)
    if given:
        if train_file is None or validation_file is None:
            raise ValueError(
                "pass both train_file and validation_file (test_file is optional), or data_dir pointing at a "
                "GLUE-layout directory"
            )
        return DatasetDict(
            {split: read_data_file(task, path, split, cache_dir=cache_dir) for split, path in given.items()}
        )
    return load_hub_task(task, cache_dir=cache_dir)


def load_hub_task(task: str | GlueTask, *, cache_dir: str | Path | None = None) -> DatasetDict:
    """Download ``task`` from the Hub dataset ``nyu-mll/glue`` (or take it from the ``datasets`` cache).

    An unreachable Hub raises ``ConnectionError`` saying to pass a GLUE-layout ``data_dir`` instead.
    """
    task = get_task(task)
    try:
        return datasets.load_dataset(HUB_DATASET, task.hub_config, cache_dir=cache_dir)
    except ConnectionError as error:
        raise ConnectionError(
            f"could not load GLUE task {task.name!r} from the Hugging Face Hub ({HUB_DATASET}, configuration "
            f"{task.hub_config!r}): {error}. Without network access, pass --data_dir (data_dir) pointing at "
            f"a GLUE-layout directory (the GLUE root holding {task.folder}/, or that folder, with "
            f"{task.files[0].filename} and {task.files[1].filename}), or --train_file and --validation_file."
        ) from error


def read_data_file(
    task: str | GlueTask, path: str | Path, split: str, *, cache_dir: str | Path | None = None
) -> Dataset:
    """Read one CSV/TSV/JSON/JSONL file of ``task`` into a ``Dataset`` with the Hub's columns and features.

    Extra columns are dropped; ``idx`` is kept if the file has it, else numbered from 0. Label names are
    mapped to their index; integer labels (also written as text) must be valid indices (``-1``, or no
    ``label`` column, only in a test split). Every problem raises an error that names the file and row
    (1-based, header not counted).
    """
    task = get_task(task)
    path = Path(path)
    raw = read_table(path, cache_dir=cache_dir, directories="or data_dir for a GLUE-layout directory")

    unlabelled = split in task.test_splits
    expected = [*task.text_columns, *([] if unlabelled else ["label"])]
    missing = [column for column in expected if column not in raw.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found columns {raw.column_names}, expected {expected} "
            f"(the Hub's column names for GLUE task {task.name!r}; for a data set of your own, give it a "
            "--task_name that is not a GLUE task's)"
        )
    table = raw.to_dict()
    columns: dict[str, list[Any]] = {}
    for column in task.text_columns:
        for row, value in enumerate(table[column], start=1):
            if value is None:
                raise ValueError(f"{path}, row {row}: column {column!r} is empty")
        columns[column] = table[column]
    labels = table.get("label", [None] * raw.num_rows)
    columns["label"] = [
        _encode_label(task, value, f"{path}, row {row}", unlabelled)
        for row, value in enumerate(labels, start=1)
    ]
    columns["idx"] = table.get("idx", list(range(raw.num_rows)))
    return Dataset.from_dict(columns, features=task.features())


def _encode_label(task: GlueTask, value: Any, where: str, unlabelled: bool) -> int | float:
    """The Hub encoding of one label read from a data file; ``where`` names the file and row for errors."""
    if unlabelled and (is_missing(value) or value == -1):
        return -1
    if is_missing(value):
        raise ValueError(f"{where}: the label is empty; only a test file may have unlabelled rows")
    if task.is_regression:
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a float score as label, found {value!r}") from None
        if not math.isfinite(score):
            raise ValueError(f"{where}: the score {value!r} is not a finite number; fix or drop the row")
        return score
    names = ", ".join(f"{index} = {name!r}" for index, name in enumerate(task.label_names))
    if isinstance(value, str):
        if value in task.label_names:
            return task.label_names.index(value)
        try:
            value = int(value)  # an index written as text, e.g. in a CSV column mixing names and indices
        except ValueError:
            raise ValueError(
                f"{where}: unknown label {value!r}; expected a label name or index: {names}"
            ) from None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and float(value).is_integer() and 0 <= value < len(task.label_names):
        return int(value)
    raise ValueError(
        f"{where}: label {value!r} is not a valid class; expected a label name or index: {names}"
    )
