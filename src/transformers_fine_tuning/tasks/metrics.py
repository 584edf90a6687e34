"""Metrics of any task and the best constant predictor's scores (the failed-run baseline), computed offline.

The metrics follow GLUE's definitions (those of the ``glue`` metric of Hugging Face ``evaluate``):
accuracy; accuracy and binary F1 of the positive class 1 for MRPC and QQP; Matthews correlation for CoLA;
Pearson and Spearman correlations of the raw predicted scores for STS-B. A task of your own data
(:mod:`transformers_fine_tuning.tasks.custom`) gets accuracy and F1 with two classes, accuracy and the macro-averaged
F1 (``f1_macro``) with more, Pearson and Spearman for regression (:func:`default_metrics`), and any metric of
its kind on request (:func:`with_metrics`); :func:`per_class_f1` gives each class's F1 for the results file.

A correlation with a constant vector is undefined (scipy returns NaN); it is reported as 0.0, the value
scikit-learn's Matthews correlation already gives for a constant prediction: a constant predictor carries
no information. This keeps the constant baseline of STS-B and collapsed runs comparable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import EvalPrediction

from .base import AnyTask, Task
from .glue.table import get_task


def _correlation(statistic: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    """A correlation that is 0.0 when either vector is constant (undefined otherwise)."""

    def correlation(predictions: np.ndarray, labels: np.ndarray) -> float:
        if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
            return 0.0
        return float(statistic(predictions, labels)[0])

    return correlation


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda predictions, labels: float(accuracy_score(labels, predictions)),
    "f1": lambda predictions, labels: float(f1_score(labels, predictions, pos_label=1, zero_division=0.0)),
    "f1_macro": lambda predictions, labels: float(
        f1_score(labels, predictions, average="macro", zero_division=0.0)
    ),
    "matthews_correlation": lambda predictions, labels: float(matthews_corrcoef(labels, predictions)),
    "pearson": _correlation(pearsonr),
    "spearmanr": _correlation(spearmanr),
}
"""Every metric by name: ``metric(predictions, labels)`` (class indices, or scores for the correlations)."""


CLASSIFICATION_METRICS = ("accuracy", "f1", "f1_macro", "matthews_correlation")
"""The metrics of a classification task: accuracy; ``f1``, the binary F1 of class 1 (two classes only);
``f1_macro``, the unweighted mean of the classes' F1 (over the classes that occur in the labels or the
predictions, scikit-learn's ``average="macro"``); Matthews correlation (its multi-class form beyond two)."""
REGRESSION_METRICS = ("pearson", "spearmanr")
"""The metrics of a regression task: Pearson and Spearman correlations of the predicted scores."""


def metric_choices(task: Task) -> tuple[str, ...]:
    """The metrics that apply to ``task``: the regression ones, or the classification ones (the binary ``f1``
    only with two classes)."""
    if task.is_regression:
        return REGRESSION_METRICS
    return tuple(name for name in CLASSIFICATION_METRICS if name != "f1" or task.num_labels == 2)


def default_metrics(*, regression: bool, num_labels: int) -> tuple[tuple[str, ...], str]:
    """The metrics reported for a task of your own data, and its main metric, by kind.

    Regression: Pearson (main) and Spearman, as STS-B. Two classes: accuracy (main) and the F1 of class 1,
    as MRPC. More: accuracy (main) and macro-F1 (a class-balanced view accuracy lacks). Accuracy is the main
    metric of classification because the failed-run test (:mod:`transformers_fine_tuning.failure`) is Mosbach et al.'s, stated
    for accuracy; ``--main_metric`` chooses another.
    """
    if regression:
        return REGRESSION_METRICS, "pearson"
    return ("accuracy", "f1" if num_labels == 2 else "f1_macro"), "accuracy"


def with_metrics(task: AnyTask, main_metric: str | None = None, extra_metrics: Sequence[str] = ()) -> AnyTask:
    """A copy of ``task`` with ``main_metric`` as its main metric and ``extra_metrics`` reported beside its own
    (e.g. Matthews correlation for a classification task). Without either, ``task`` itself.

    Raises:
        ValueError: a metric that does not fit the task (a correlation of classes, the binary F1 of three
            classes, an unknown name), with the ones that do.
    """
    wanted = [*([main_metric] if main_metric else []), *extra_metrics]
    if not wanted:
        return task
    valid = metric_choices(task)
    wrong = [name for name in wanted if name not in valid]
    if wrong:
        kind = "regression" if task.is_regression else f"{task.num_labels}-class classification"
        raise ValueError(
            f"metric(s) {wrong} do not apply to task {task.name!r} ({kind}): choose --main_metric and "
            f"--extra_metrics from {', '.join(valid)}"
        )
    return dataclasses.replace(
        task,
        metric_names=tuple(dict.fromkeys([*task.metric_names, *wanted])),
        main_metric=main_metric or task.main_metric,
    )


def _array(values: Sequence[float] | np.ndarray, dtype: type | None = None) -> np.ndarray:
    """``values`` as a NumPy array.

    Slicing first reads a ``datasets`` column (``dataset["label"]``, datasets >= 4) in one go, where
    converting it directly would read it row by row; lists and arrays are unaffected.
    """
    return np.asarray(values[:], dtype=dtype)


def _class_labels(task: Task, labels: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    """``labels`` as an integer array, checked to be class indices of ``task``."""
    array = _array(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{what} must be a 1-D sequence of class indices, got dtype {array.dtype}, shape {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() >= task.num_labels):
        raise ValueError(
            f"{what} must be class indices in 0..{task.num_labels - 1} for task {task.name!r}, "
            f"found values in {array.min()}..{array.max()} "
            "(-1 marks an unlabelled test split, which cannot be scored)"
        )
    return array


def compute_glue_metrics(
    task: str | Task, predictions: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """The task's metrics (keys :attr:`Task.metric_names`) of ``predictions`` against ``labels``: a GLUE task
    (by name or table entry) or any :class:`Task`, such as one of your own data.

    Classification predictions are class indices (the argmax of the logits); regression predictions are the
    raw predicted scores. Both may be lists, NumPy arrays or a ``datasets`` column (``dataset["label"]``).
    """
    task = get_task(task)
    if task.is_regression:
        predictions = _array(predictions, np.float64)
        labels = _array(labels, np.float64)
    else:
        predictions = _class_labels(task, predictions, "predictions")
        labels = _class_labels(task, labels, "labels")
    if predictions.shape != labels.shape or predictions.ndim != 1 or predictions.size == 0:
        raise ValueError(
            f"predictions and labels must be non-empty 1-D arrays of the same length, got shapes "
            f"{predictions.shape} and {labels.shape}"
        )
    return {name: METRICS[name](predictions, labels) for name in task.metric_names}


def make_compute_metrics(task: str | Task) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` function for ``transformers.Trainer`` evaluating ``task``.

    It takes the model's logits (the first element when the model returns a tuple): the argmax over the last
    axis for classification, the single output squeezed for regression.
    """
    task = get_task(task)

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        predictions = predictions_from_logits(eval_prediction.predictions, regression=task.is_regression)
        return compute_glue_metrics(task, predictions, eval_prediction.label_ids)

    return compute_metrics


def predictions_from_logits(logits: Any, *, regression: bool) -> np.ndarray:
    """The predictions in a model's output (the first element when it is a tuple): the class of the largest
    logit, or for regression the single output, as a 1-D array."""
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
    return logits.reshape(-1) if regression else logits.argmax(axis=-1)


def _check_classes(task: Task) -> None:
    if task.is_regression:
        raise ValueError(f"task {task.name!r} is a regression task: its labels are scores, not classes")


def label_counts(task: str | Task, labels: Sequence[int] | np.ndarray) -> dict[str, int]:
    """How many times each class occurs in ``labels``, keyed by label name in the task's label order."""
    task = get_task(task)
    _check_classes(task)
    counts = np.bincount(_class_labels(task, labels, "labels"), minlength=task.num_labels)
    return {name: int(count) for name, count in zip(task.label_names, counts, strict=True)}


def per_class_f1(
    task: str | Task, predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """The F1 of each class (that class against the rest), keyed by label name in the task's label order.

    A class that is neither predicted nor in ``labels`` has no F1; it is reported as 0.0 (scikit-learn's
    ``zero_division=0``), as is one never predicted correctly.
    """
    task = get_task(task)
    _check_classes(task)
    scores = f1_score(
        _class_labels(task, labels, "labels"),
        _class_labels(task, predictions, "predictions"),
        labels=list(range(task.num_labels)),
        average=None,
        zero_division=0.0,
    )
    return {name: float(score) for name, score in zip(task.label_names, scores, strict=True)}


def constant_baseline(task: str | Task, eval_labels: Sequence[float] | np.ndarray) -> dict[str, float]:
    """The best a constant prediction scores on ``eval_labels``, each of the task's metrics on its own.

    The baseline of the failed-run test (:mod:`transformers_fine_tuning.failure`; Mosbach et al. 2021 judge a run
    against the majority classifier *of the evaluated split*): every class is tried as the constant and each
    metric keeps its best — accuracy, the largest class share; the binary F1, predicting class 1 everywhere;
    Matthews correlation, 0. For regression every constant correlates 0 (reported as 0.0). The split's own
    labels decide, never the training set's: a training majority class can be the split's minority.
    """
    task = get_task(task)
    eval_labels = _array(eval_labels)
    if task.is_regression:
        constant = float(np.mean(_array(eval_labels, np.float64)))
        return compute_glue_metrics(task, np.full(eval_labels.shape, constant), eval_labels)
    scores = [
        compute_glue_metrics(task, np.full(eval_labels.shape, k), eval_labels) for k in range(task.num_labels)
    ]
    return {name: max(score[name] for score in scores) for name in task.metric_names}
