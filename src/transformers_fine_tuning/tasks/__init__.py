"""The task layer: what a task is (:class:`Task`, :mod:`.base`), the nine GLUE tasks (:mod:`.glue`), and for any
task its metrics and the best constant predictor's scores (:mod:`.metrics`) and its tokenisation
(:mod:`.preprocessing`)."""

from .base import AnyTask, Task
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
    "GLUE_TASKS",
    "HUB_DATASET",
    "METRICS",
    "REGRESSION_METRICS",
    "AnyTask",
    "GlueFile",
    "GlueTask",
    "Task",
    "compute_glue_metrics",
    "constant_baseline",
    "default_metrics",
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
]
