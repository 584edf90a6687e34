"""Your own data: any text-classification or regression data set, from the Hub or from files, as a task.

The fine-tune job and the studies know a task through :class:`~.base.Task`; the nine GLUE tasks are the table's
(:mod:`.glue`), any other is a :class:`CustomTask` built here from its data:

* **Sources** (one per run). ``dataset_name``: a Hub data set (``load_dataset(name, config)``; offline, from the
  ``datasets`` cache), a local folder of data files that ``load_dataset`` reads (``train.csv``,
  ``validation.jsonl``, …), or a directory written by ``DatasetDict.save_to_disk``; trained on its ``train``
  split, evaluated on ``validation`` (or ``validation_split_name``). Or ``train_file`` and ``validation_file``:
  CSV, TSV (no quoting, as GLUE's), JSON or JSON-lines files, or directories written by ``Dataset.save_to_disk``.
* **Columns.** The label is ``label_column`` (default ``label``). The texts are ``text_column`` (and
  ``text_pair_column`` for pairs), else found as Hugging Face's ``run_glue.py`` finds them: ``sentence1`` and
  ``sentence2`` when both exist, else the first two string columns other than the label, or the only one.
* **Labels**, from the training split: names (strings) or integers are classes, in sorted order (index ``i`` is
  class ``i``, the model config's ``id2label``); a ``ClassLabel`` column keeps its own names and order; floats
  are regression targets. Refused before any training, with the file (or split), the row and the fix: an
  empty label, a column that mixes kinds (names and numbers), a training split with one class (or one score),
  a validation label the training split does not have.

The loaded splits have the columns the rest of the job expects of any task: the text columns (their names in
the data), ``label`` (class index or float score) and ``idx``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .data_files import read_table
from .glue.table import is_glue_task
from .labels import Labels
from .metrics import default_metrics

__all__ = ["CustomTask", "load_custom_task", "task_name_from_data"]

logger = logging.getLogger(__name__)

_LABEL, _IDX = "label", "idx"
_SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes (DatasetDict, Dataset)
_TRAIN_SUFFIX = re.compile(r"[-_.]?train(ing)?$", re.IGNORECASE)


@dataclass(frozen=True)
class CustomTask:
    """A task of your own data: what the job needs of it (see :class:`~.base.Task`), found in the data.

    Attributes:
        name: the task's name (``--task_name``, or taken from the data: :func:`task_name_from_data`).
        text_columns: the text column, or the two of a pair, as the data names them.
        label_names: the classes in index order (``()`` for regression).
        is_regression: whether the label is a float target.
        metric_names, main_metric: what is reported and what decides a failed run (:func:`default_metrics`,
            or chosen with ``--main_metric``/``--extra_metrics``).
        eval_splits: the one evaluation split (``validation``, or the data set's ``validation_split_name``).
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    is_regression: bool
    metric_names: tuple[str, ...]
    main_metric: str
    eval_splits: tuple[str, ...] = ("validation",)

    @property
    def kind(self) -> str:
        """``"custom"``: a task of your own data (see :class:`~.base.Task`)."""
        return "custom"

    @property
    def num_labels(self) -> int:
        """The size of the model's output: 1 for regression, the number of classes otherwise."""
        return 1 if self.is_regression else len(self.label_names)


# -- the task's name ------------------------------------------------------------------------------------------


def task_name_from_data(
    *,
    train_file: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
) -> str:
    """The name of a task of your own data when ``--task_name`` is not given: the data set's (``imdb`` for
    ``stanfordnlp/imdb``, ``-<config>`` appended), else the training file's without a ``train`` suffix
    (``sentiment`` for ``sentiment_train.csv``; its directory's for ``train.csv``).

    A name that would read as a GLUE task gets ``-custom`` appended: it names your data, not GLUE's.
    """
    if dataset_name is not None:
        name = Path(dataset_name.rstrip("/\\")).name
        if dataset_config_name:
            name += f"-{dataset_config_name}"
    elif train_file is not None:
        path = Path(train_file)
        name = _TRAIN_SUFFIX.sub("", path.stem if path.suffix else path.name) or path.resolve().parent.name
    else:
        raise ValueError("a task of your own data needs dataset_name or train_file to be named from")
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "custom"
    return f"{name}-custom" if is_glue_task(name) else name


# -- reading the sources --------------------------------------------------------------------------------------


class _Part(NamedTuple):
    """One split as read from its source, and how errors name it (the file, or the data set and split)."""

    split: str
    dataset: Dataset
    where: str


def _is_saved(path: Path) -> bool:
    return any((path / marker).is_file() for marker in _SAVED_MARKERS)


def _load_saved(path: Path, expected: type[Dataset] | type[DatasetDict]) -> Dataset | DatasetDict:
    """A directory written by ``save_to_disk``; refused when it holds the other kind than its flag takes (one
    split for a data file's flag, the splits for ``--dataset_name``)."""
    saved = datasets.load_from_disk(str(path))
    if isinstance(saved, expected):
        return saved
    if isinstance(saved, DatasetDict):
        raise ValueError(
            f"{path} holds a DatasetDict (splits {list(saved)}), not one split: pass it as --dataset_name"
        )
    raise ValueError(
        f"{path} holds one Dataset (written by Dataset.save_to_disk), not its splits: pass it as --train_file "
        "and the validation data as --validation_file, or save a DatasetDict"
    )


def _read_split_file(path: str | Path, split: str, cache_dir: str | Path | None) -> _Part:
    """A training or validation file, or a directory written by ``Dataset.save_to_disk``."""
    path = Path(path).expanduser()
    if not path.is_dir():
        table = read_table(path, cache_dir=cache_dir, directories="or a directory written by save_to_disk")
        return _Part(split, table, str(path))
    if not _is_saved(path):
        raise ValueError(
            f"{path} is a directory, but not one written by save_to_disk (it has no state.json): pass a CSV, "
            "TSV or JSON file, or --dataset_name for a folder of data files"
        )
    return _Part(split, _load_saved(path, Dataset), str(path))


def _read_dataset(
    name: str, config: str | None, eval_split: str, cache_dir: str | Path | None
) -> tuple[_Part, _Part]:
    """The training and evaluation splits of a Hub data set, a folder of data files or a saved DatasetDict."""
    path = Path(name).expanduser()
    if path.is_dir() and _is_saved(path):
        if config is not None:
            raise ValueError(
                f"{path} is a directory written by save_to_disk, which has no configurations: drop "
                "--dataset_config_name"
            )
        loaded = _load_saved(path, DatasetDict)
    else:
        loaded = datasets.load_dataset(name, config, cache_dir=cache_dir)
    described = f"data set {name!r}" + (f" (configuration {config!r})" if config else "")
    missing = [split for split in ("train", eval_split) if split not in loaded]
    if missing:
        raise ValueError(
            f"{described} has no {' or '.join(repr(split) for split in missing)} split; its splits are "
            f"{list(loaded)}"
            + ("" if eval_split in loaded else ": evaluate on one with --validation_split_name")
        )
    return tuple(
        _Part(split, loaded[split], f"{described}, split {split!r}") for split in ("train", eval_split)
    )


def load_custom_task(
    name: str,
    *,
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    validation_split_name: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[CustomTask, DatasetDict]:
    """A task of your own data and its training and evaluation splits (see the module docstring).

    Args:
        name: the task's name.
        train_file, validation_file: the data as two files (or ``Dataset.save_to_disk`` directories), or
        dataset_name, dataset_config_name, validation_split_name: a Hub data set, a folder of data files or a
            ``DatasetDict.save_to_disk`` directory, and the split to evaluate on (default ``validation``).
        text_column, text_pair_column, label_column: the columns, else found in the data.
        cache_dir: the ``datasets`` cache.

    Returns:
        The task (its default metrics, :func:`~.metrics.default_metrics`) and a ``DatasetDict`` with
        ``train`` and the evaluation split: the text columns, ``label`` and ``idx``.

    Raises:
        ValueError, OSError: a missing file or split, a missing or ill-typed column, bad labels — each naming
            the file or split, the row where one is at fault, and the fix.
        ConnectionError: a Hub data set that is neither reachable nor in the local cache.
    """
    train, evaluation = _read_sources(
        name,
        train_file=train_file,
        validation_file=validation_file,
        dataset_name=dataset_name,
        dataset_config_name=dataset_config_name,
        validation_split_name=validation_split_name,
        cache_dir=cache_dir,
    )
    label = label_column or _LABEL
    _check_label_column((train, evaluation), label, named=bool(label_column))
    texts = _text_columns(train, label, text_column, text_pair_column)
    text_values = {part.split: _text_values(part, texts) for part in (train, evaluation)}
    labels = Labels.of(train, label)
    regression = labels.names is None
    metric_names, main_metric = default_metrics(regression=regression, num_labels=len(labels.names or ()))
    task = CustomTask(
        name=name,
        text_columns=texts,
        label_names=labels.names or (),
        is_regression=regression,
        metric_names=metric_names,
        main_metric=main_metric,
        eval_splits=(evaluation.split,),
    )
    return task, _encoded_splits(task, (train, evaluation), text_values, labels, label)


def _read_sources(
    name: str,
    *,
    train_file: str | Path | None,
    validation_file: str | Path | None,
    dataset_name: str | None,
    dataset_config_name: str | None,
    validation_split_name: str | None,
    cache_dir: str | Path | None,
) -> tuple[_Part, _Part]:
    """The training and evaluation splits from the one source given: two files, or a data set."""
    files = train_file is not None or validation_file is not None
    if files == (dataset_name is not None):
        raise ValueError(
            f"task {name!r} of your own data takes its data from one source, dataset_name (--dataset_name) or "
            f"train_file and validation_file (--train_file, --validation_file); {'both' if files else 'neither'} "
            "given"
        )
    if not files:
        return _read_dataset(
            dataset_name, dataset_config_name, validation_split_name or "validation", cache_dir
        )
    if train_file is None or validation_file is None:
        raise ValueError(
            f"task {name!r}: pass both --train_file and --validation_file (or --dataset_name for a data set "
            "with its splits)"
        )
    if dataset_config_name is not None or validation_split_name is not None:
        raise ValueError("--dataset_config_name and --validation_split_name apply to --dataset_name only")
    return (
        _read_split_file(train_file, "train", cache_dir),
        _read_split_file(validation_file, "validation", cache_dir),
    )


def _check_label_column(parts: Sequence[_Part], label: str, *, named: bool) -> None:
    """Every split has the label column (``named``: given by ``--label_column``, else the default)."""
    for part in parts:
        if label not in part.dataset.column_names:
            raise ValueError(
                f"{part.where}: no label column {label!r}; its columns are {part.dataset.column_names}"
                + ("" if named else ": name the label column with --label_column")
            )


def _encoded_splits(
    task: CustomTask,
    parts: tuple[_Part, _Part],
    text_values: dict[str, dict[str, list[str]]],
    labels: Labels,
    label: str,
) -> DatasetDict:
    """The training and evaluation splits in the job's columns: the texts, ``label`` (encoded) and ``idx``."""
    features = Features(
        {
            **{column: Value("string") for column in task.text_columns},
            _LABEL: Value("float32") if task.is_regression else ClassLabel(names=list(task.label_names)),
            _IDX: Value("int32"),
        }
    )
    train = parts[0]
    splits = {}
    for part in parts:
        encoded = labels.encode(part, label, train.where)
        columns = {**text_values[part.split], _LABEL: encoded, _IDX: list(range(len(encoded)))}
        splits[part.split] = Dataset.from_dict(columns, features=features)
    return DatasetDict(splits)


# -- columns ----------------------------------------------------------------------------------------------------


def _is_text(feature: Any) -> bool:
    return isinstance(feature, Value) and feature.dtype in ("string", "large_string")


def _text_columns(
    train: _Part, label: str, text_column: str | None, text_pair_column: str | None
) -> tuple[str, ...]:
    """The text columns named, else found: ``sentence1``/``sentence2``, else the first one or two string
    columns other than the label (a guess among several is said on stderr)."""
    if text_pair_column is not None and text_column is None:
        raise ValueError(
            "--text_pair_column names the second text of a pair: give the first with --text_column"
        )
    if text_column is not None:
        texts = (text_column, *([] if text_pair_column is None else [text_pair_column]))
    else:
        others = [column for column in train.dataset.column_names if column not in (label, _LABEL, _IDX)]
        if "sentence1" in others and "sentence2" in others:
            return ("sentence1", "sentence2")
        strings = [column for column in others if _is_text(train.dataset.features[column])]
        if not strings:
            raise ValueError(
                f"{train.where}: no text column (no string column besides the label {label!r}; its columns are "
                f"{train.dataset.column_names}): name it with --text_column"
            )
        texts = tuple(strings[:2])
        if len(strings) > 1:
            logger.warning(
                "text column(s) %s taken from %s (the first string columns besides the label %r; it has %s): "
                "name them with --text_column and --text_pair_column",
                list(texts),
                train.where,
                label,
                strings,
            )
    if {label, _LABEL, _IDX} & set(texts) or len(set(texts)) < len(texts):
        raise ValueError(
            f"text column(s) {list(texts)}: each must be a column of its own, not the label column {label!r}, "
            f"nor named {_LABEL!r} or {_IDX!r} (which the job writes): rename it in the data"
        )
    return texts


def _text_values(part: _Part, texts: Sequence[str]) -> dict[str, list[str]]:
    """The texts of ``part``, checked: every text column is there, holds text, and has no empty row."""
    values = {}
    for column in texts:
        if column not in part.dataset.column_names:
            raise ValueError(
                f"{part.where}: no text column {column!r}; its columns are {part.dataset.column_names}: name "
                "the text column(s) with --text_column and --text_pair_column"
            )
        feature = part.dataset.features[column]
        if not _is_text(feature):
            raise ValueError(
                f"{part.where}: text column {column!r} holds {getattr(feature, 'dtype', feature)} values, not "
                "text: name the text column(s) with --text_column and --text_pair_column"
            )
        values[column] = part.dataset[column][:]
        for row, value in enumerate(values[column], start=1):
            if value is None:
                raise ValueError(f"{part.where}, row {row}: column {column!r} is empty")
    return values
