"""What an evaluation keeps beside its metrics: the model's predictions on each evaluation split.

Two runs with the same accuracy can disagree on many examples, and that churn between seeds is instability too
(it is what a seed study's churn statistic measures). The Trainer hands the predictions only to
``compute_metrics`` and forgets them; :class:`PredictionRecorder` wraps ``compute_metrics`` to keep the latest
ones, and as a callback learns from the metrics' names which split they belong to.

Evaluation is cheaper on batches of examples of similar length: padded to the longest of a random mix, a batch
of 64 sentences pays for the longest one 64 times. :func:`sort_by_length` orders an evaluation split longest
first (the first batch is the largest, so memory runs out at once if it runs out at all); the recorder, told the
order, puts the predictions back in the split's own order, and the metrics, which do not depend on the order,
are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from datasets import Dataset
from transformers import EvalPrediction, TrainerCallback

from .results import split_metrics
from .tasks import predictions_from_logits

__all__ = ["PredictionRecorder", "sort_by_length"]


def sort_by_length(dataset: Dataset, column: str = "input_ids") -> tuple[Dataset, list[int]]:
    """``dataset`` longest example first, and the order: position ``k`` of the result is ``order[k]`` of
    ``dataset``. The sort is stable, so examples of equal length keep their order; the result is a view
    (``Dataset.select``), not a copy."""
    lengths = [len(ids) for ids in dataset[column]]
    order = sorted(range(len(lengths)), key=lambda position: -lengths[position])
    return dataset.select(order), order


class PredictionRecorder(TrainerCallback):
    """Keeps, per evaluation split, the predictions of its latest evaluation and the step it was made at.

    Pass :meth:`compute_metrics` to the Trainer as its ``compute_metrics`` and the recorder itself as a callback.
    Predictions are class indices (the argmax of the logits), or for regression (``regression=True``) the
    predicted score, in the order of the evaluation split (before any :func:`sort_by_length`).

    Args:
        compute_metrics: the metrics function to wrap (it receives the same ``EvalPrediction``).
        splits: the names of the evaluation splits (the ``eval_dataset`` dict's keys).
        regression: whether the model predicts one score rather than class logits.
        orders: per split evaluated in another order, that order (:func:`sort_by_length`'s).
    """

    def __init__(
        self,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]],
        splits: Sequence[str],
        *,
        regression: bool = False,
        orders: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self._compute_metrics = compute_metrics
        self._splits = list(splits)
        self._regression = regression
        self._orders = dict(orders or {})
        self._pending: list[Any] | None = None
        self.latest: dict[str, tuple[int, list[Any]]] = {}

    def compute_metrics(self, eval_prediction: EvalPrediction) -> dict[str, float]:
        """The wrapped metrics, after keeping the predictions for :meth:`on_evaluate`."""
        predictions = predictions_from_logits(eval_prediction.predictions, regression=self._regression)
        self._pending = predictions.tolist()
        return self._compute_metrics(eval_prediction)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        splits = list(split_metrics(metrics or {}, self._splits))
        if self._pending is not None and len(splits) == 1:
            self.latest[splits[0]] = (state.global_step, self._in_split_order(splits[0], self._pending))
        self._pending = None

    def _in_split_order(self, split: str, predictions: list[Any]) -> list[Any]:
        order = self._orders.get(split)
        if order is None:
            return predictions
        restored: list[Any] = [None] * len(order)
        for evaluated_at, position in enumerate(order):
            restored[position] = predictions[evaluated_at]
        return restored

    def predictions_at(self, step: int) -> dict[str, list[Any]]:
        """The predictions of the splits last evaluated at ``step`` (the final evaluation, for the results)."""
        return {split: values for split, (made_at, values) in self.latest.items() if made_at == step}
