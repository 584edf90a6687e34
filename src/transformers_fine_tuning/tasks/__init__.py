"""The task layer: a task by name and its data, from plain values (:func:`load_task`, :mod:`.loading`).

What a task is: :class:`Task` (:mod:`.base`), one of the nine GLUE tasks (:mod:`.glue`: the table, GLUE's layout,
files, the Hub, and the layout written) or a task of your own data (:class:`CustomTask`, :mod:`.custom`, its labels
in :mod:`.labels`). For any task: its metrics and the best constant predictor's scores (:mod:`.metrics`), and its
tokenisation (:mod:`.preprocessing`).
"""

from .base import AnyTask, Task
from .custom import CustomTask, load_custom_task, task_name_from_data
from .glue import (
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
from .loading import (
    CUSTOM_DATA_ARGUMENTS,
    DATA_SOURCE_ARGUMENTS,
    check_task_source,
    load_task,
    load_task_and_datasets,
)
from .metrics import (
    CLASSIFICATION_METRICS,
    METRICS,
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

__all__ = [
    "CLASSIFICATION_METRICS",
    "CUSTOM_DATA_ARGUMENTS",
    "DATA_SOURCE_ARGUMENTS",
    "GLUE_TASKS",
    "HUB_DATASET",
    "METRICS",
    "REGRESSION_METRICS",
    "AnyTask",
    "CustomTask",
    "GlueFile",
    "GlueTask",
    "Task",
    "check_task_source",
    "compute_glue_metrics",
    "constant_baseline",
    "default_metrics",
    "get_task",
    "is_glue_task",
    "label_counts",
    "load_custom_task",
    "load_glue_dir",
    "load_hub_task",
    "load_task",
    "load_task_and_datasets",
    "load_task_datasets",
    "make_compute_metrics",
    "metric_choices",
    "per_class_f1",
    "predictions_from_logits",
    "read_data_file",
    "read_glue_file",
    "read_glue_rows",
    "resolve_task_dir",
    "task_name_from_data",
    "tokenize_dataset",
    "with_metrics",
]
