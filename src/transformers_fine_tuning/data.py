"""The old path of your own data as a task, deprecated in 0.2.0 and to be removed in 0.3.0 (importing it warns):
``transformers_fine_tuning.data`` gives the names it gave, now held by
:mod:`transformers_fine_tuning.tasks.custom` (:class:`CustomTask`, :func:`load_custom_task`,
:func:`task_name_from_data`) and :mod:`transformers_fine_tuning.tasks.loading` (which task the data arguments
name: :func:`check_task_source`, :func:`load_task_and_datasets`)."""

from .deprecation import warn_moved
from .tasks.custom import CustomTask, load_custom_task, task_name_from_data
from .tasks.loading import (
    CUSTOM_DATA_ARGUMENTS,
    DATA_SOURCE_ARGUMENTS,
    check_task_source,
    load_task_and_datasets,
)

__all__ = [
    "CUSTOM_DATA_ARGUMENTS",
    "DATA_SOURCE_ARGUMENTS",
    "CustomTask",
    "check_task_source",
    "load_custom_task",
    "load_task_and_datasets",
    "task_name_from_data",
]

warn_moved("transformers_fine_tuning.data", "transformers_fine_tuning.tasks")
