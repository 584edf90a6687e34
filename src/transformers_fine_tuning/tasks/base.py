"""What the job needs of a task, any task: the :class:`Task` protocol.

The nine GLUE tasks (:class:`~transformers_fine_tuning.tasks.glue.GlueTask`, :mod:`.glue`) and a task of your own
data (:class:`~transformers_fine_tuning.tasks.custom.CustomTask`, :mod:`.custom`) are both one; the metrics
(:mod:`.metrics`), tokenisation (:mod:`.preprocessing`), the model's config and the fine-tune job read a task only
through it.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

__all__ = ["AnyTask", "Task"]


class Task(Protocol):
    """What the fine-tune job, tokenisation, the metrics, the majority baseline and the model's config need of
    a task: :class:`~transformers_fine_tuning.tasks.glue.GlueTask` and
    :class:`~transformers_fine_tuning.tasks.custom.CustomTask` both are one.

    Its data sets hold the text columns, ``label`` (a class index in :attr:`label_names`' order, or a float
    score for regression) and ``idx``.
    """

    @property
    def name(self) -> str:
        """The task's name, in results, tables and the model config's ``finetuning_task``."""

    @property
    def kind(self) -> str:
        """``"glue"`` for the nine GLUE tasks, ``"custom"`` for a data set of your own."""

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The text columns: one for single texts, two for pairs (tokenised together)."""

    @property
    def label_names(self) -> tuple[str, ...]:
        """The class names, index ``i`` is class ``i`` (the config's ``id2label``); not classes for regression."""

    @property
    def is_regression(self) -> bool:
        """Whether the label is a float score (one output) rather than a class."""

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics reported, as keys of :func:`~transformers_fine_tuning.tasks.metrics.compute_glue_metrics`."""

    @property
    def main_metric(self) -> str:
        """The metric that decides whether a run failed, and that studies compare."""

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """The evaluation splits; the first is the one the main metric is measured on."""

    @property
    def num_labels(self) -> int:
        """The size of the model's output: 1 for regression, the number of classes otherwise."""


AnyTask = TypeVar("AnyTask", bound=Task)
"""Any :class:`Task`: a function that takes one and returns one of the same kind (``with_metrics``, ``get_task``)."""
