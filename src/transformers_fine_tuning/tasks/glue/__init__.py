"""The nine GLUE tasks: the task table, their data from GLUE's distribution layout, from files with the Hub's
columns or from the Hub (``nyu-mll/glue``), and that layout written back (:mod:`.export`).

Metrics and tokenisation are any task's, in :mod:`transformers_fine_tuning.tasks`.
"""

from typing import TYPE_CHECKING, Any

from .files import load_glue_dir, read_glue_file, read_glue_rows, resolve_task_dir
from .loading import load_hub_task, load_task_datasets, read_data_file
from .table import GLUE_TASKS, HUB_DATASET, GlueFile, GlueTask, get_task, is_glue_task

if TYPE_CHECKING:
    from .export import export_hub_glue, find_glue_dir, write_glue_dir

_EXPORT_NAMES = frozenset({"export_hub_glue", "find_glue_dir", "write_glue_dir"})


def __getattr__(name: str) -> Any:
    """The names of :mod:`.export`, imported on first use (PEP 562) rather than with the package: the module
    is also run as a script (``python -m transformers_fine_tuning.tasks.glue.export``), and runpy warns on stderr
    when the package has imported it before."""
    if name in _EXPORT_NAMES:
        from . import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GLUE_TASKS",
    "HUB_DATASET",
    "GlueFile",
    "GlueTask",
    "export_hub_glue",
    "find_glue_dir",
    "get_task",
    "is_glue_task",
    "load_glue_dir",
    "load_hub_task",
    "load_task_datasets",
    "read_data_file",
    "read_glue_file",
    "read_glue_rows",
    "resolve_task_dir",
    "write_glue_dir",
]
