"""GLUE task knowledge: the task table, data loading, tokenisation, metrics and the failed-run test."""

from .files import load_glue_dir, read_glue_file, read_glue_rows, resolve_task_dir
from .loading import load_hub_task, load_task_datasets, read_data_file
from .metrics import (
    compute_glue_metrics,
    is_failed_run,
    label_counts,
    majority_baseline,
    make_compute_metrics,
)
from .preprocessing import tokenize_dataset
from .tasks import GLUE_TASKS, HUB_DATASET, GlueFile, GlueTask, get_task

__all__ = [
    "GLUE_TASKS",
    "HUB_DATASET",
    "GlueFile",
    "GlueTask",
    "compute_glue_metrics",
    "get_task",
    "is_failed_run",
    "label_counts",
    "load_glue_dir",
    "load_hub_task",
    "load_task_datasets",
    "majority_baseline",
    "make_compute_metrics",
    "read_data_file",
    "read_glue_file",
    "read_glue_rows",
    "resolve_task_dir",
    "tokenize_dataset",
]
