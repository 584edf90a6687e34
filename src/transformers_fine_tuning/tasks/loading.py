"""Any task by name, and its data, from plain values: :func:`load_task` (the job calls it through
:func:`load_task_and_datasets`, which reads them from its :class:`~transformers_fine_tuning.arguments.DataArguments`).

A GLUE task's name (:func:`~.glue.is_glue_task`) gives the table's task and its data from GLUE's layout, files
with the Hub's columns, or the Hub (:func:`~.glue.load_task_datasets`); any other name is a task of your own data
(:func:`~.custom.load_custom_task`). :func:`check_task_source` says, before anything is read, whether the data
arguments given fit the task's kind.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from datasets import DatasetDict

from .base import Task
from .custom import load_custom_task
from .glue import GLUE_TASKS, HUB_DATASET, get_task, is_glue_task, load_task_datasets
from .metrics import with_metrics

if TYPE_CHECKING:
    from ..arguments import DataArguments

__all__ = [
    "CUSTOM_DATA_ARGUMENTS",
    "DATA_SOURCE_ARGUMENTS",
    "check_task_source",
    "load_task",
    "load_task_and_datasets",
]

DATA_SOURCE_ARGUMENTS = (
    "data_dir",
    "train_file",
    "validation_file",
    "dataset_name",
    "dataset_config_name",
    "validation_split_name",
)
"""The arguments that say where a task's data comes from; one source per run (a study's task that names its own
source replaces the study's, see :mod:`transformers_fine_tuning.study.run.spec`)."""
CUSTOM_DATA_ARGUMENTS = (
    "dataset_name",
    "dataset_config_name",
    "validation_split_name",
    "text_column",
    "text_pair_column",
    "label_column",
)
"""The arguments that describe a data set of your own; a GLUE task has its table's columns and labels."""


def check_task_source(task_name: str, given: Collection[str]) -> None:
    """Whether the data arguments ``given`` (the names of those set) fit ``task_name``: a GLUE task takes its
    data from GLUE's layout, files with GLUE's columns or the Hub, not the options of your own data; a task
    of your own data needs a source of its own (``dataset_name``, or ``train_file`` and ``validation_file``)
    and cannot use GLUE's layout. The fine-tune job's arguments and a study's tasks are both checked here.

    Raises:
        ValueError: the mismatch, with the flags and the fix.
    """
    given = set(given)
    if is_glue_task(task_name):
        own = [f"--{name}" for name in CUSTOM_DATA_ARGUMENTS if name in given]
        if own:
            raise ValueError(
                f"{', '.join(own)} describe(s) a data set of your own, but --task_name {task_name} is the GLUE "
                f"task, whose data has GLUE's columns and labels (--data_dir, --train_file/--validation_file, or "
                f"the Hub's {HUB_DATASET}): give your own data's task another name, e.g. --task_name "
                f"my-{task_name}"
            )
        return
    if "data_dir" in given:
        raise ValueError(
            f"--data_dir is GLUE's distribution layout, for the GLUE tasks ({', '.join(GLUE_TASKS)}); for "
            f"task {task_name!r} of your own data pass --train_file and --validation_file, or --dataset_name "
            "(a Hub data set, a folder of data files, or a directory written by save_to_disk)"
        )
    if not {"dataset_name", "train_file", "validation_file"} & given:
        raise ValueError(
            f"unknown GLUE task {task_name!r}; valid tasks are: {', '.join(GLUE_TASKS)}. For a data set of "
            "your own, give its data: --dataset_name, or --train_file and --validation_file"
        )


def load_task(
    task_name: str,
    *,
    data_dir: str | Path | None = None,
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    validation_split_name: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    main_metric: str | None = None,
    extra_metrics: Sequence[str] = (),
    cache_dir: str | Path | None = None,
) -> tuple[Task, DatasetDict]:
    """The task ``task_name`` names and its splits, for either kind.

    A GLUE task comes from the table and :func:`~.glue.load_task_datasets` (``data_dir``, or ``train_file`` and
    ``validation_file``, else the Hub); any other name is a task of your own data (:func:`~.custom.load_custom_task`,
    which reads the other arguments). ``main_metric`` and ``extra_metrics`` then apply to either
    (:func:`~.metrics.with_metrics`). The data arguments are not checked against the task's kind here: that is
    :func:`check_task_source`'s, which the job's arguments run when made.

    Raises:
        ValueError, OSError: bad data or arguments, naming the file, row or flag and the fix.
        ConnectionError: a Hub data set that is neither reachable nor in the local cache.
    """
    if is_glue_task(task_name):
        task: Task = get_task(task_name)
        raw = load_task_datasets(
            task,
            data_dir=data_dir,
            train_file=train_file,
            validation_file=validation_file,
            cache_dir=cache_dir,
        )
    else:
        task, raw = load_custom_task(
            task_name,
            train_file=train_file,
            validation_file=validation_file,
            dataset_name=dataset_name,
            dataset_config_name=dataset_config_name,
            validation_split_name=validation_split_name,
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column,
            cache_dir=cache_dir,
        )
    return with_metrics(task, main_metric, extra_metrics), raw


def load_task_and_datasets(data: DataArguments, *, cache_dir: str | None = None) -> tuple[Task, DatasetDict]:
    """The task the job's data arguments name and its splits: :func:`load_task` with the values of ``data``."""
    return load_task(
        data.task_name,
        data_dir=data.data_dir,
        train_file=data.train_file,
        validation_file=data.validation_file,
        dataset_name=data.dataset_name,
        dataset_config_name=data.dataset_config_name,
        validation_split_name=data.validation_split_name,
        text_column=data.text_column,
        text_pair_column=data.text_pair_column,
        label_column=data.label_column,
        main_metric=data.main_metric,
        extra_metrics=data.extra_metric_names,
        cache_dir=cache_dir,
    )
