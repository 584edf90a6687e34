"""What a failed run is, defined once: the job, the study's store, its report, its plots and pruning read it here.

Mosbach et al. 2021 ("On the Stability of Fine-tuning BERT", Sec. 3) call a fine-tuning run *failed* when its
accuracy at the end of training is no better than that of the majority classifier **on the split it is
evaluated on**. Judged against the training split's majority class instead, a collapsed model can pass: on the
first 1,000 RTE training pairs the majority class is ``not_entailment`` (510 of 1,000), which scores 131/277 =
0.4729 on dev, while a model that always answers ``entailment`` scores 146/277 = 0.5271.

A run is failed when the first of these rules fires (the order is the order of :data:`RULES`, and ``results.json``
records which one fired, with the baseline's value):

1. ``pruned`` — an early test stopped it (``--prune``);
2. ``non_finite`` — training stopped on a non-finite loss or gradient, or its final main metric is NaN/inf;
3. ``at_or_below_constant`` — its final main metric is at or below the best *constant* predictor's value of
   that metric on the evaluated split (:func:`~transformers_fine_tuning.tasks.constant_baseline`): accuracy, the
   largest class share; F1, predicting the positive class everywhere; Matthews correlation and the
   correlations of a regression, 0 (a constant carries no information);
4. ``one_class`` — its final predictions are (almost) all one class: at least :data:`ONE_CLASS_SHARE` of them,
   on a split whose own labels are less concentrated than that. A model that answers one class whatever the
   input has learnt nothing, even where the split's class shares let it edge above the constant's score.

The same rules apply to GLUE tasks, to tasks of your own data and to regression (rule 4 is for classes only).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ONE_CLASS_SHARE",
    "RULES",
    "TIE_TOLERANCE",
    "Failure",
    "at_or_below",
    "constant_baseline_from_majority",
    "judge",
]

RULES = ("pruned", "non_finite", "at_or_below_constant", "one_class")
"""The rules that make a run failed, in the order they are checked (the first that fires is recorded)."""
ONE_CLASS_SHARE = 0.95
"""A run whose most frequent predicted class takes at least this share of the split answered (almost) one
class (rule ``one_class``)."""


@dataclass(frozen=True)
class Failure:
    """The verdict on one run, as ``results.json`` records it (``failure``).

    Attributes:
        failed: whether the run failed.
        rule: the rule that made it failed (one of :data:`RULES`), ``None`` when it did not fail.
        metric, split: the main metric and the split it was judged on.
        value: the run's final value of the metric (``None`` when non-finite or missing).
        baseline: the best constant predictor's value of the metric on that split (``None`` when unknown).
        top_class_share: the share of the run's final predictions in their most frequent class (classification).
        label_top_share: the share of the split's labels in their most frequent class, when known.
    """

    failed: bool
    rule: str | None
    metric: str
    split: str
    value: float | None
    baseline: float | None
    top_class_share: float | None = None
    label_top_share: float | None = None


TIE_TOLERANCE = 1e-9
"""Scores this close count as equal: the same accuracy computed two ways (146/277, 1 − 131/277) can differ in
the last bit, and a run at exactly the constant's score is failed whichever way it was computed."""


def at_or_below(value: float | None, baseline: float) -> bool:
    """Whether ``value`` is no better than ``baseline`` (within :data:`TIE_TOLERANCE`); a missing or NaN value
    is."""
    return value is None or not value > baseline + TIE_TOLERANCE


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(float(value))


def _top_share(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return Counter(values).most_common(1)[0][1] / len(values)


def judge(
    *,
    metric: str,
    split: str,
    value: float | None,
    baseline: float | None,
    predictions: Sequence[float] = (),
    labels: Sequence[float] = (),
    label_top_share: float | None = None,
    regression: bool = False,
    stopped_early: str | None = None,
    pruned: bool = False,
) -> Failure:
    """Judge a run by the rules of the module docstring.

    Args:
        metric, split, value: the main metric, the split it is measured on and the run's final value of it.
        baseline: the best constant predictor's value of ``metric`` on ``split``; ``None`` skips rule 3.
        predictions: the run's final predictions on ``split`` (class indices), for rule 4.
        labels: the split's labels, for the labels' own concentration in rule 4; without them
            ``label_top_share`` (when known) stands in.
        regression: a regression task (rule 4 does not apply).
        stopped_early: the results' ``stopped_early`` (``non_finite`` for rule 2).
        pruned: whether an early test stopped the run (rule 1).
    """
    classes = not regression and bool(predictions)
    top = _top_share(list(predictions)) if classes else None
    label_top = _top_share(list(labels)) if (classes and labels) else label_top_share
    if pruned:
        rule = "pruned"
    elif stopped_early == "non_finite" or not _finite(value):
        rule = "non_finite"
    elif baseline is not None and _finite(baseline) and at_or_below(float(value), float(baseline)):
        rule = "at_or_below_constant"
    elif top is not None and top >= ONE_CLASS_SHARE and (label_top is None or label_top < ONE_CLASS_SHARE):
        rule = "one_class"
    else:
        rule = None
    return Failure(
        failed=rule is not None,
        rule=rule,
        metric=metric,
        split=split,
        value=float(value) if _finite(value) else None,
        baseline=float(baseline) if _finite(baseline) else None,
        top_class_share=top,
        label_top_share=label_top,
    )


def constant_baseline_from_majority(
    majority: Mapping[str, float | None], *, regression: bool, num_labels: int
) -> dict[str, float | None]:
    """The best constant predictor's metrics on a split, from the metrics of the *training* majority class's
    constant on it — what ``results.json`` files of schema version 2 recorded.

    Exact for regression (every constant correlates 0) and for two classes, where the constant's accuracy q is
    one class's share of the split and the other's is 1 − q: accuracy max(q, 1 − q); F1 of class 1 (binary) the
    F1 of predicting 1 everywhere, 2p/(1 + p) with p the share of class 1 (known from the recorded F1: 0 when the
    constant was class 0); macro-F1 m/(1 + m) with m the larger share; Matthews correlation 0. With more classes
    the split's shares cannot be recovered: the recorded values are returned (a lower bound of the best
    constant's), so such files are judged as they were.
    """
    if regression:
        return {name: 0.0 for name in majority}
    q = majority.get("accuracy")
    if num_labels != 2 or q is None:
        return dict(majority)
    q = float(q)
    best: dict[str, float | None] = {}
    for name, value in majority.items():
        if name == "accuracy":
            best[name] = max(q, 1.0 - q)
        elif name == "f1":
            positive = q if (value or 0.0) > 0 else 1.0 - q  # the share of class 1 on the split
            best[name] = 2 * positive / (1 + positive)
        elif name == "f1_macro":
            larger = max(q, 1.0 - q)
            best[name] = larger / (1 + larger)
        elif name == "matthews_correlation":
            best[name] = 0.0
        else:
            best[name] = value
    return best
