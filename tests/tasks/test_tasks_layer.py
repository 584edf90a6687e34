"""The task layer's face: ``load_task`` from plain values gives what the job's ``load_task_and_datasets`` gives
from its arguments, for a GLUE task and a task of your own data; the old import paths give the moved objects."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from transformers_fine_tuning.arguments import DataArguments
from transformers_fine_tuning.tasks import GLUE_TASKS, CustomTask, load_task, load_task_and_datasets

SENTIMENT = Path(__file__).resolve().parents[1] / "data" / "sentiment"
GLUE_FIXTURES = Path(__file__).resolve().parents[1] / "glue" / "fixtures"


def test_load_task_reads_a_task_of_your_own_data_from_plain_values(tmp_path: Path) -> None:
    task, data = load_task(
        "sentiment",
        train_file=SENTIMENT / "train.csv",
        validation_file=SENTIMENT / "validation.csv",
        extra_metrics=("matthews_correlation",),
        cache_dir=tmp_path,
    )
    assert isinstance(task, CustomTask)
    assert task.label_names == ("negative", "neutral", "positive")
    assert task.metric_names == ("accuracy", "f1_macro", "matthews_correlation")
    assert list(data) == ["train", "validation"] and data["train"].num_rows == 90

    arguments = DataArguments(
        task_name="sentiment",
        train_file=str(SENTIMENT / "train.csv"),
        validation_file=str(SENTIMENT / "validation.csv"),
        extra_metrics="matthews_correlation",
    )
    from_arguments, same_data = load_task_and_datasets(arguments, cache_dir=str(tmp_path))
    assert from_arguments == task
    assert same_data["validation"][:] == data["validation"][:]


def test_load_task_reads_a_glue_task_from_its_layout_with_the_main_metric_chosen() -> None:
    task, data = load_task("SST-2", data_dir=GLUE_FIXTURES, main_metric="matthews_correlation")
    assert task.name == "sst2" and task.kind == "glue"
    assert task.main_metric == "matthews_correlation"
    assert task.metric_names == ("accuracy", "matthews_correlation")
    assert set(data) == {"train", "validation", "test"}
    assert GLUE_TASKS["sst2"].main_metric == "accuracy"  # the table's entry is left as it was


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("transformers_fine_tuning.glue.tasks", "transformers_fine_tuning.tasks.glue.table"),
        ("transformers_fine_tuning.glue.files", "transformers_fine_tuning.tasks.glue.files"),
        ("transformers_fine_tuning.glue.loading", "transformers_fine_tuning.tasks.glue.loading"),
        ("transformers_fine_tuning.glue.export", "transformers_fine_tuning.tasks.glue.export"),
        ("transformers_fine_tuning.glue.metrics", "transformers_fine_tuning.tasks.metrics"),
        ("transformers_fine_tuning.glue.preprocessing", "transformers_fine_tuning.tasks.preprocessing"),
        ("transformers_fine_tuning.data_labels", "transformers_fine_tuning.tasks.labels"),
    ],
)
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_an_old_module_path_is_the_moved_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_old_packages_give_the_same_names() -> None:
    import transformers_fine_tuning.data as data
    import transformers_fine_tuning.glue as glue
    import transformers_fine_tuning.tasks as tasks
    import transformers_fine_tuning.tasks.glue as tasks_glue

    for name in glue.__all__:
        moved = getattr(tasks_glue, name) if hasattr(tasks_glue, name) else getattr(tasks, name)
        assert getattr(glue, name) is moved, name
    for name in data.__all__:
        assert getattr(data, name) is getattr(tasks, name), name
    assert glue.metrics is tasks.metrics and glue.tasks.Task is tasks.Task
