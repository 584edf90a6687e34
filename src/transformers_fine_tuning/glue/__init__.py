"""GLUE task knowledge: the task table, data loading and export; and for any :class:`Task` (GLUE's, or one of
your own data, :mod:`transformers_fine_tuning.data`): tokenisation, metrics, the best constant predictor's scores."""

from typing import TYPE_CHECKING, Any

from .files import load_glue_dir, read_glue_file, read_glue_rows, resolve_task_dir
from .loading import load_hub_task, load_task_datasets, read_data_file
from .metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    compute_glue_metrics,
    constant_baseline,
    default_metrics,
    label_counts,
    make_compute_metrics,
    metric_choices,
    per_class_f1,
    predictions_from_logits,
    with_metrics,
)
from .preprocessing import tokenize_dataset
from .tasks import GLUE_TASKS, HUB_DATASET, GlueFile, GlueTask, Task, get_task, is_glue_task

if TYPE_CHECKING:
    from .export import export_hub_glue, find_glue_dir, write_glue_dir

_EXPORT_NAMES = frozenset({"export_hub_glue", "find_glue_dir", "write_glue_dir"})


def __getattr__(name: str) -> Any:
    """The names of :mod:`.export`, imported on first use (PEP 562) rather than with the package: the module
    is also run as a script (``python -m transformers_fine_tuning.glue.export``), and runpy warns on stderr
    when the package has imported it before."""
    if name in _EXPORT_NAMES:
        from . import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASSIFICATION_METRICS",
    "GLUE_TASKS",
    "HUB_DATASET",
    "REGRESSION_METRICS",
    "GlueFile",
    "GlueTask",
    "Task",
    "compute_glue_metrics",
    "constant_baseline",
    "default_metrics",
    "export_hub_glue",
    "find_glue_dir",
    "get_task",
    "is_glue_task",
    "label_counts",
    "load_glue_dir",
    "load_hub_task",
    "load_task_datasets",
    "make_compute_metrics",
    "metric_choices",
    "per_class_f1",
    "predictions_from_logits",
    "read_data_file",
    "read_glue_file",
    "read_glue_rows",
    "resolve_task_dir",
    "tokenize_dataset",
    "with_metrics",
    "write_glue_dir",
]
