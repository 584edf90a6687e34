"""The nine GLUE tasks: columns, labels, metrics, splits and on-disk layout, in one table; each a
:class:`~transformers_fine_tuning.tasks.base.Task`.

Everything the rest of the library knows about a GLUE task lives in :data:`GLUE_TASKS`, so that loading,
tokenisation and evaluation agree on column names and label encodings whatever the data source:

* column names, label order and split names are those of the Hub dataset ``nyu-mll/glue``;
* the local layout (file names, header or not, which column holds what, how labels are written) is that
  of the original GLUE distribution built by GLUE's ``download_glue_data.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

from datasets import ClassLabel, Features, Value

from ..base import AnyTask, Task

HUB_DATASET = "nyu-mll/glue"
"""Hub repository of the GLUE export whose column names and label encodings this library follows."""


@dataclass(frozen=True)
class GlueFile:
    """How one TSV file of the GLUE distribution is laid out.

    Attributes:
        split: the Hub split the file holds (``train``, ``validation_matched``, ``test``...).
        filename: the file's name inside the task folder.
        text_columns: where the texts are, in the order of :attr:`GlueTask.text_columns`: header names
            when the file has a header, 0-based column indices when it has none.
        label_column: where the label is (header name or 0-based index); ``None`` for unlabelled test files.
        has_header: whether the first line names the columns.
        num_columns: the number of columns of every row of a header-less file (with a header, every row
            must have as many columns as the header).
    """

    split: str
    filename: str
    text_columns: tuple[str, ...] | tuple[int, ...]
    label_column: str | int | None
    has_header: bool = True
    num_columns: int | None = None


@dataclass(frozen=True)
class GlueTask:
    """What the library knows about one GLUE task.

    Attributes:
        name: the task's short name, also the Hub configuration name (``sst2``, ``stsb``...).
        folder: the task's folder in the GLUE distribution (``SST-2``, ``STS-B``...).
        text_columns: the text columns, as the Hub names them (one for single-sentence tasks, two for pairs).
        label_names: the label names in the Hub's ``ClassLabel`` order (index ``i`` is label ``i``).
            For the regression task STS-B they are ``("none", "regression")`` and are not classes.
        is_regression: whether the label is a float score (STS-B) rather than a class index.
        file_labels: for each label index, the string that encodes it in the GLUE TSV files (e.g. MRPC
            ``"0"``/``"1"``, RTE ``"entailment"``/``"not_entailment"``); ``None`` for regression, whose
            files hold the float score.
        metric_names: the metrics reported for the task, as keys of :func:`compute_glue_metrics`'s result.
        main_metric: the metric that decides whether a run failed (:mod:`transformers_fine_tuning.failure`).
        eval_splits: the evaluation splits (MNLI: matched and mismatched).
        test_splits: the unlabelled test splits (label ``-1``, as on the Hub).
        files: the TSV files of the GLUE distribution, one per split.
        skip_malformed_rows: drop rows with the wrong number of columns instead of failing. Only QQP,
            whose distributed TSV files contain a few questions broken over two lines
            (nyu-mll/GLUE-baselines issue 5); the Hub export and transformers' old QQP reader drop them too.
    """

    name: str
    folder: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    is_regression: bool
    file_labels: tuple[str, ...] | None
    metric_names: tuple[str, ...]
    main_metric: str
    eval_splits: tuple[str, ...]
    test_splits: tuple[str, ...]
    files: tuple[GlueFile, ...]
    skip_malformed_rows: bool = False

    @property
    def kind(self) -> str:
        """``"glue"``: a task of the table (see :class:`~transformers_fine_tuning.tasks.base.Task`)."""
        return "glue"

    @property
    def hub_config(self) -> str:
        """The configuration name of the task in the Hub dataset ``nyu-mll/glue``."""
        return self.name

    @property
    def num_labels(self) -> int:
        """The size of the model's output: 1 for regression, the number of classes otherwise."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def splits(self) -> tuple[str, ...]:
        """All splits, in order: ``train``, the evaluation splits, the test splits."""
        return ("train", *self.eval_splits, *self.test_splits)

    def file_for(self, split: str) -> GlueFile:
        """The GLUE-distribution file that holds ``split``."""
        for file in self.files:
            if file.split == split:
                return file
        raise ValueError(
            f"GLUE task {self.name!r} has no split {split!r}; its splits are {list(self.splits)}"
        )

    def features(self) -> Features:
        """The ``datasets`` features of a split, as on the Hub: texts, ``label`` and ``idx``.

        Classification labels are a ``ClassLabel`` over :attr:`label_names` (``-1`` marks an unlabelled
        test row); the STS-B label is a ``float32`` score.
        """
        label = Value("float32") if self.is_regression else ClassLabel(names=list(self.label_names))
        return Features(
            {
                **{column: Value("string") for column in self.text_columns},
                "label": label,
                "idx": Value("int32"),
            }
        )


def _standard_files(text_columns: tuple[str, ...], label_column: str) -> tuple[GlueFile, ...]:
    """``train.tsv``, ``dev.tsv`` and ``test.tsv`` with headers, the layout of most GLUE tasks."""
    return (
        GlueFile("train", "train.tsv", text_columns, label_column),
        GlueFile("validation", "dev.tsv", text_columns, label_column),
        GlueFile("test", "test.tsv", text_columns, None),
    )


_ACCURACY = ("accuracy",)
_ACCURACY_F1 = ("accuracy", "f1")
_VALIDATION = ("validation",)
_TEST = ("test",)
_NLI = ("entailment", "not_entailment")
_PAIR = ("sentence1", "sentence2")

GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            name="cola",
            folder="CoLA",
            text_columns=("sentence",),
            label_names=("unacceptable", "acceptable"),
            is_regression=False,
            file_labels=("0", "1"),
            metric_names=("matthews_correlation",),
            main_metric="matthews_correlation",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            # train/dev have no header: source, label, original label ("*" or empty), sentence.
            files=(
                GlueFile("train", "train.tsv", (3,), 1, has_header=False, num_columns=4),
                GlueFile("validation", "dev.tsv", (3,), 1, has_header=False, num_columns=4),
                GlueFile("test", "test.tsv", ("sentence",), None),
            ),
        ),
        GlueTask(
            name="sst2",
            folder="SST-2",
            text_columns=("sentence",),
            label_names=("negative", "positive"),
            is_regression=False,
            file_labels=("0", "1"),
            metric_names=_ACCURACY,
            main_metric="accuracy",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(("sentence",), "label"),
        ),
        GlueTask(
            name="mrpc",
            folder="MRPC",
            text_columns=_PAIR,
            label_names=("not_equivalent", "equivalent"),
            is_regression=False,
            file_labels=("0", "1"),
            metric_names=_ACCURACY_F1,
            main_metric="f1",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(("#1 String", "#2 String"), "Quality"),
        ),
        GlueTask(
            name="qqp",
            folder="QQP",
            text_columns=("question1", "question2"),
            label_names=("not_duplicate", "duplicate"),
            is_regression=False,
            file_labels=("0", "1"),
            metric_names=_ACCURACY_F1,
            main_metric="f1",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(("question1", "question2"), "is_duplicate"),
            skip_malformed_rows=True,
        ),
        GlueTask(
            name="stsb",
            folder="STS-B",
            text_columns=_PAIR,
            label_names=("none", "regression"),
            is_regression=True,
            file_labels=None,
            metric_names=("pearson", "spearmanr"),
            main_metric="pearson",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(_PAIR, "score"),
        ),
        GlueTask(
            name="mnli",
            folder="MNLI",
            text_columns=("premise", "hypothesis"),
            label_names=("entailment", "neutral", "contradiction"),
            is_regression=False,
            file_labels=("entailment", "neutral", "contradiction"),
            metric_names=_ACCURACY,
            main_metric="accuracy",
            eval_splits=("validation_matched", "validation_mismatched"),
            test_splits=("test_matched", "test_mismatched"),
            files=(
                GlueFile("train", "train.tsv", _PAIR, "gold_label"),
                GlueFile("validation_matched", "dev_matched.tsv", _PAIR, "gold_label"),
                GlueFile("validation_mismatched", "dev_mismatched.tsv", _PAIR, "gold_label"),
                GlueFile("test_matched", "test_matched.tsv", _PAIR, None),
                GlueFile("test_mismatched", "test_mismatched.tsv", _PAIR, None),
            ),
        ),
        GlueTask(
            name="qnli",
            folder="QNLI",
            text_columns=("question", "sentence"),
            label_names=_NLI,
            is_regression=False,
            file_labels=_NLI,
            metric_names=_ACCURACY,
            main_metric="accuracy",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(("question", "sentence"), "label"),
        ),
        GlueTask(
            name="rte",
            folder="RTE",
            text_columns=_PAIR,
            label_names=_NLI,
            is_regression=False,
            file_labels=_NLI,
            metric_names=_ACCURACY,
            main_metric="accuracy",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(_PAIR, "label"),
        ),
        GlueTask(
            name="wnli",
            folder="WNLI",
            text_columns=_PAIR,
            label_names=("not_entailment", "entailment"),
            is_regression=False,
            # The files write 1 for entailment and 0 for not_entailment: the same indices as the Hub.
            file_labels=("0", "1"),
            metric_names=_ACCURACY,
            main_metric="accuracy",
            eval_splits=_VALIDATION,
            test_splits=_TEST,
            files=_standard_files(_PAIR, "label"),
        ),
    )
}
"""All nine GLUE tasks, keyed by their short name."""


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def is_glue_task(name: str) -> bool:
    """Whether ``name`` names one of the nine GLUE tasks (as :func:`get_task` reads names)."""
    return _normalise(name) in GLUE_TASKS


@overload
def get_task(task: str) -> GlueTask: ...
@overload
def get_task(task: AnyTask) -> AnyTask: ...
def get_task(task: str | Task) -> Task:
    """Look a GLUE task up by name: case-insensitive, dashes and underscores ignored (``SST-2``, ``sts_b``).

    A task (a :class:`GlueTask`, or any :class:`Task`, such as a custom one) is returned unchanged, so that
    functions can take either a GLUE name or a task.
    """
    if not isinstance(task, str):
        return task
    found = GLUE_TASKS.get(_normalise(task))
    if found is None:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks are: {', '.join(GLUE_TASKS)}")
    return found
