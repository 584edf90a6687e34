"""The old path of the task layer, deprecated in 0.2.0 and to be removed in 0.3.0 (importing it warns):
``transformers_fine_tuning.glue`` gives the names it always gave, now held by
:mod:`transformers_fine_tuning.tasks` (the :class:`Task` protocol, metrics and tokenisation of any task) and
:mod:`transformers_fine_tuning.tasks.glue` (the GLUE table, loading and export). Its submodules (``glue.tasks``,
``glue.files``, ``glue.loading``, ``glue.metrics``, ``glue.preprocessing``, ``glue.export``) are the moved
modules themselves."""

from typing import TYPE_CHECKING, Any

from ..deprecation import warn_moved
from ..tasks.base import Task
from ..tasks.glue import (
    GLUE_TASKS,
    HUB_DATASET,
    GlueFile,
    GlueTask,
    get_task,
    is_glue_task,
    load_glue_dir,
    load_hub_task,
    load_task_datasets,
    read_data_file,
    read_glue_file,
    read_glue_rows,
    resolve_task_dir,
)
from ..tasks.metrics import (
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
from ..tasks.preprocessing import tokenize_dataset

# The old submodules, attributes of the package as they were (each is the moved module itself).
from . import files, loading, metrics, preprocessing, tasks  # noqa: F401

warn_moved(
    "transformers_fine_tuning.glue",
    "transformers_fine_tuning.tasks (and transformers_fine_tuning.tasks.glue.export for the export)",
)

if TYPE_CHECKING:
    from ..tasks.glue.export import export_hub_glue, find_glue_dir, write_glue_dir

_EXPORT_NAMES = frozenset({"export_hub_glue", "find_glue_dir", "write_glue_dir"})


def __getattr__(name: str) -> Any:
    """The names of :mod:`~transformers_fine_tuning.tasks.glue.export`, imported on first use (PEP 562), as
    before: ``python -m transformers_fine_tuning.glue.export`` runs that module, and runpy warns on stderr when
    the package has imported it before."""
    if name in _EXPORT_NAMES:
        from ..tasks.glue import export

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
