"""The ``results.json`` of one fine-tuning run: its one definition, its writer and its reader.

A run's outcome is a :class:`RunResults`; the fine-tune job writes it with :func:`write_results`, and everything
that reads one — the study store, its report and plots, the benchmarks, your own analysis — reads it with
:func:`read_results` (or :meth:`RunResults.from_dict`), so a new field is added in one place, with a type.

Version history (``schema_version``):

* **1** — evaluations as the Trainer logged them (``{"step": 8, "eval_validation_accuracy": 0.61, ...}``).
* **2** — evaluations per split (:class:`Evaluation`: ``step``, ``epoch``, ``split``, ``metrics``), the
  checkpoint a resumed run continued from (``resumed_from``), the final predictions on each evaluation split
  (``predictions``), what the task is (``task_info``: GLUE's or your own data's, its labels) and each class's
  final F1 (``per_class_f1``), WiSE-FT's α and its held-out scores (``wise_ft``).
* **3** — failed runs judged the papers' way (:mod:`.failure`): the best constant predictor's scores on each
  evaluation split (``constant_baseline``, replacing the training majority's ``majority_baseline``), the
  split's labels in split order (``labels``, beside ``predictions``) and the verdict with the rule that fired
  (``failure``).

Older files are read and upgraded: version 1's evaluations are split; version 2's ``majority_baseline`` becomes
the best constant's scores where they follow from it (two classes, regression; see
:func:`~.failure.constant_baseline_from_majority`) and the run is judged again by today's rules, so a study
stored before version 3 is summarised with the same definition as a new one.

A file of a version this package does not know is refused with :class:`ResultsVersionError`, naming both
versions. Files are written atomically (:mod:`.atomic`): a reader never sees half a file, a crash never leaves
a truncated one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .best import BestScore, best_score
from .failure import Failure, constant_baseline_from_majority, judge
from .provenance import device_info, library_versions

__all__ = [
    "FAILED_DEFINITION",
    "PRUNED",
    "PRUNING_TESTS",
    "READABLE_VERSIONS",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "Evaluation",
    "LossLog",
    "MainMetric",
    "ResultsVersionError",
    "ResumedFrom",
    "RunResults",
    "TaskInfo",
    "WiseFT",
    "device_info",
    "evaluations_from_log",
    "judge_results",
    "library_versions",
    "losses_from_log",
    "metric_curve",
    "read_results",
    "split_metrics",
    "write_json_atomic",
    "write_results",
]

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
FAILED_DEFINITION = (
    "pruned by an early test, or stopped on (or ended with) a non-finite value, or final main metric on the "
    "first evaluation split <= the best constant predictor's on that split, or final predictions (almost) all "
    "one class"
)
PRUNING_TESTS = ("off", "loss", "dev", "both")
"""``--prune``: which early test stops a failing run (the training loss, the first dev evaluation, either)."""
PRUNED = ("early_failure", "dev_failure")
"""The ``stopped_early`` values of a run an early test stopped: a failed run."""


class ResultsVersionError(ValueError):
    """A ``results.json`` of a schema version this package cannot read."""


@dataclass(frozen=True)
class MainMetric:
    """The metric that decides whether a run failed: its name, the split it is measured on, its final value."""

    name: str
    split: str
    value: float | None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation during training: the metrics of one evaluation split at one training step."""

    step: int
    epoch: float | None
    split: str
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class LossLog:
    """One training-loss log entry of the Trainer (every ``logging_steps`` steps)."""

    step: int
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None


@dataclass(frozen=True)
class ResumedFrom:
    """The checkpoint a resumed run continued from, and its global step."""

    checkpoint: str
    step: int


@dataclass(frozen=True)
class WiseFT:
    """WiSE-FT's interpolation θ = (1 − α)·θ₀ + α·θ after training (``--wise_ft_alpha``/``--wise_ft_alphas``).

    Attributes:
        alpha: the α the final model has (given, or chosen on the held-out examples).
        alphas, scores: the grid it was chosen from and each α's ``metric`` on the held-out examples (empty when
            α was given).
        metric: the metric that chose it (the task's main metric), ``None`` when α was given.
        held_out_examples: the training examples set aside to choose it (not trained on), 0 when α was given.
        source: where θ₀ came from: ``anchors`` (AdamWL2SP's), ``checkpoint`` (the pretrained model), ``copy``.
    """

    alpha: float
    alphas: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    metric: str | None = None
    held_out_examples: int = 0
    source: str | None = None


@dataclass(frozen=True)
class TaskInfo:
    """What the run learnt: the task's kind, its labels (as the model config's ``id2label`` has them) and texts.

    Attributes:
        kind: ``glue`` (one of the nine GLUE tasks) or ``custom`` (a data set of your own).
        regression: whether the label is a float target (one output) rather than a class.
        label_names: the classes, index ``i`` is class ``i``; empty for regression.
        text_columns: the text column, or the two of a pair, as the data names them.
    """

    kind: str
    regression: bool
    label_names: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunResults:
    """Everything one fine-tuning run reports; the content of its ``results.json``.

    Attributes:
        status: ``completed``, or ``interrupted`` (SIGTERM/SIGINT: a checkpoint was saved, no final evaluation,
            ``metrics`` empty, ``failed`` not judged; the run resumes from it and it never counts as finished).
        task, model, model_type, recipe: what was fine-tuned (``recipe`` ``None`` without ``--recipe``).
        seed, data_seed: the head-initialisation seed and the data-order seed; ``dropout_seed`` and
            ``train_subset_seed`` when given (see :mod:`.seeds`).
        main_metric: the task's main metric on its first evaluation split, at the end of training.
        failed: a *failed run* (see :data:`FAILED_DEFINITION` and :mod:`.failure`); ``failure`` says which rule
            fired, with the baseline's value; ``stopped_early`` says why training ended before its schedule —
            ``non_finite``, or pruned (:data:`PRUNED`: ``early_failure``, the loss test; ``dev_failure``, the dev
            test) — or is ``None``; ``global_step`` is then the step it stopped at.
        metrics: the final metrics, per evaluation split (``{"validation": {"accuracy": 0.6, "loss": ...}}``).
        constant_baseline: per evaluation split, the best score of a constant prediction on that split, for each
            metric (accuracy: the largest class share; see :func:`~.tasks.constant_baseline`).
        evaluations: every evaluation during training, in order, the final one included.
        train_loss_history: every training-loss log entry.
        train_metrics: what ``Trainer.train`` returned (``train_loss``, ``train_runtime``, ...).
        num_examples: examples per split after ``--max_*_samples``.
        global_step: optimizer steps taken in all (a resumed run: counted from the start, not from the resume).
        wall_time_s, started_at, finished_at: this process's time, and when it started and ended (UTC).
        resumed_from: the checkpoint this run continued from, ``None`` when it trained from the start.
        device, versions: where it ran, with which libraries.
        arguments: every argument of the run, by group (``model``, ``data``, ``fine_tuning``, ...).
        diagnostics: the reports of the diagnostic callbacks (``--diagnostics``), by name.
        effective: what was used where it can differ from what was asked: ``max_seq_length``,
            ``pad_to_max_length`` (resolved for the device), ``optimizer`` (the class the Trainer built).
        predictions: per evaluation split, the model's prediction for each example at the final evaluation,
            in the split's order (class indices; STS-B: scores) — what churn between seeds compares.
        labels: per evaluation split, its labels in the same order (empty in files written before version 3) —
            what the dev-set noise floor resamples.
        failure: the verdict of :func:`.failure.judge` (``None`` for an interrupted run).
        task_info: the task's kind, labels and text columns (``None`` in files written before it).
        per_class_f1: per evaluation split, the final F1 of each class by label name (classification).
        wise_ft: WiSE-FT's α and held-out scores, ``None`` without WiSE-FT; the final metrics are then the
            interpolated model's.
        best: the best evaluation of the main metric during training beside the final one (:mod:`.best`),
            chosen on the held-out split when ``--best_held_out`` set one aside, else on the reported split
            (``optimistic``); files written before it get it from their evaluations when read.
        timings: where the run's time went, in seconds (see :mod:`.timings`): ``startup_s`` (interpreter and
            imports), ``parse_s``, ``data_s``, ``model_s``, ``tokenize_s``, ``trainer_s`` (building the Trainer),
            ``training_s`` (the training loop without its evaluations), ``evaluation_s`` (the evaluations during
            training; ``evaluations_s`` each of them), ``final_evaluation_s``, ``save_s``, ``other_s`` (what no
            phase accounts for) and ``total_s`` (their sum: the process's time up to writing the results).
    """

    status: str
    task: str
    model: str
    seed: int
    data_seed: int
    main_metric: MainMetric
    failed: bool
    metrics: dict[str, dict[str, float | None]]
    constant_baseline: dict[str, dict[str, float | None]]
    global_step: int
    model_type: str | None = None
    recipe: str | None = None
    dropout_seed: int | None = None
    train_subset_seed: int | None = None
    failed_definition: str = FAILED_DEFINITION
    stopped_early: str | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    train_loss_history: list[LossLog] = field(default_factory=list)
    train_metrics: dict[str, Any] = field(default_factory=dict)
    num_examples: dict[str, int] = field(default_factory=dict)
    wall_time_s: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    resumed_from: ResumedFrom | None = None
    device: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    arguments: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    effective: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, list[float]] = field(default_factory=dict)
    labels: dict[str, list[float]] = field(default_factory=dict)
    failure: Failure | None = None
    task_info: TaskInfo | None = None
    per_class_f1: dict[str, dict[str, float]] = field(default_factory=dict)
    wise_ft: WiseFT | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    best: BestScore | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def main_baseline(self) -> float | None:
        """The best constant predictor's value of the main metric on the main split."""
        return self.constant_baseline.get(self.main_metric.split, {}).get(self.main_metric.name)

    def curve(self, metric: str | None = None, split: str | None = None) -> tuple[list[int], list[float]]:
        """(steps, values) of ``metric`` on ``split`` (default: the main metric) at each evaluation."""
        return metric_curve(
            self.evaluations, metric or self.main_metric.name, split or self.main_metric.split
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, as written to ``results.json``."""
        return _jsonable(self)

    @classmethod
    def from_dict(cls, content: Mapping[str, Any], *, source: str = "results") -> RunResults:
        """Read the content of a ``results.json`` of any readable version (older ones are upgraded).

        Raises:
            ResultsVersionError: a version this package does not read; the message names both.
            ValueError: a required field is missing or malformed, named with ``source``.
        """
        if not isinstance(content, Mapping):
            raise ValueError(f"{source}: a results file holds a JSON object, not {type(content).__name__}")
        version = content.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ResultsVersionError(
                f"{source} has schema_version {version!r}; this transformers-fine-tuning "
                f"({_package_version()}) writes version {SCHEMA_VERSION} and reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Read it with the version that wrote it "
                f"({(content.get('versions') or {}).get('transformers-fine-tuning', 'unknown')}), or upgrade."
            )
        values = dict(content)
        renamed = {"constant_baseline": "majority_baseline"} if version < 3 else {}
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if _required(f) and renamed.get(f.name, f.name) not in values
        ]
        if missing:
            raise ValueError(f"{source}: missing field(s) {missing} (schema version {version})")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            splits = list(values["metrics"])
            evaluations = values.get("evaluations") or []
            values["evaluations"] = (
                evaluations_from_log(evaluations, splits)
                if version == 1
                else [Evaluation(**entry) for entry in evaluations]
            )
            values["train_loss_history"] = [
                LossLog(**{k: v for k, v in entry.items() if k in _LOSS_KEYS})
                for entry in values.get("train_loss_history") or []
            ]
            values["main_metric"] = MainMetric(**values["main_metric"])
            resumed = values.get("resumed_from")
            values["resumed_from"] = None if resumed is None else ResumedFrom(**resumed)
            task_info = values.get("task_info")
            values["task_info"] = None if task_info is None else TaskInfo(**task_info)
            wise_ft = values.get("wise_ft")
            values["wise_ft"] = None if wise_ft is None else WiseFT(**wise_ft)
            failure = values.get("failure")
            values["failure"] = None if failure is None else Failure(**failure)
            if "best" not in values:  # a file written before ``best``: from its evaluations
                main = values["main_metric"]
                values["best"] = best_score(values["evaluations"], main.name, main.split)
            elif values["best"] is not None:
                values["best"] = BestScore(**values["best"])
            values["schema_version"] = SCHEMA_VERSION
            values = {key: value for key, value in values.items() if key in known or key in renamed.values()}
            return cls(**(_upgrade_failure(values) if version < 3 else values))
        except (TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"{source}: malformed results ({type(error).__name__}: {error})") from None


_LOSS_KEYS = tuple(f.name for f in dataclasses.fields(LossLog))


def judge_results(results: RunResults) -> Failure:
    """The verdict of :func:`.failure.judge` on a run's recorded outcome (its main metric, the constant
    baseline, predictions and labels on the main split, how it stopped)."""
    main = results.main_metric
    return judge(
        metric=main.name,
        split=main.split,
        value=main.value,
        baseline=results.main_baseline,
        predictions=results.predictions.get(main.split, ()),
        labels=results.labels.get(main.split, ()),
        label_top_share=results.constant_baseline.get(main.split, {}).get("accuracy"),
        regression=bool(results.task_info and results.task_info.regression),
        stopped_early=results.stopped_early,
        pruned=results.stopped_early in PRUNED,
    )


def _upgrade_failure(values: dict[str, Any]) -> dict[str, Any]:
    """A version-1/2 file's values with the best constant's scores derived from its ``majority_baseline`` and
    the run judged again (an interrupted run stays unjudged)."""
    task_info = values.get("task_info")  # absent in older files: the classes are unknown, the values stay
    regression = bool(task_info.regression) if task_info else values.get("task") == "stsb"
    num_labels = len(task_info.label_names) if task_info else 0
    values["constant_baseline"] = {
        split: constant_baseline_from_majority(metrics, regression=regression, num_labels=num_labels)
        for split, metrics in (values.pop("majority_baseline", None) or {}).items()
    }
    if values.get("status") == "completed":
        verdict = judge_results(RunResults(**values))
        values["failure"], values["failed"] = verdict, verdict.failed
        values["failed_definition"] = FAILED_DEFINITION
    return values


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _package_version() -> str:
    try:
        return metadata.version("transformers-fine-tuning")
    except metadata.PackageNotFoundError:
        return "not installed"


def write_results(path: str | Path, results: RunResults) -> Path:
    """Write ``results`` to ``path`` (a file, or a directory to hold ``results.json``) atomically."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    return write_json_atomic(path, results.to_dict())


def write_json_atomic(path: str | Path, content: Any) -> Path:
    """Write any JSON-like ``content`` (dataclasses, enums, numpy/torch scalars too) atomically."""
    return write_text_atomic(path, json.dumps(_jsonable(content), indent=2, allow_nan=False) + "\n")


def read_results(path: str | Path) -> RunResults:
    """Read a ``results.json`` (a file, or a run directory holding one).

    Raises:
        FileNotFoundError: no such file.
        ResultsVersionError: written by a version of the schema this package does not read.
        ValueError: not JSON, or not a results file; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    return RunResults.from_dict(content, source=str(path))


# -- from the Trainer's log -----------------------------------------------------------------------------------


def split_metrics(flat: Mapping[str, Any], splits: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{"eval_validation_accuracy": 0.6, ...}`` (the Trainer's keys) -> ``{"validation": {"accuracy": 0.6}}``.

    Split names may contain underscores (``validation_matched``), so the longest split name that prefixes a key
    wins; keys of no split are left out.
    """
    by_length = sorted(splits, key=len, reverse=True)
    result: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        for split in by_length:
            prefix = f"eval_{split}_"
            if key.startswith(prefix):
                result.setdefault(split, {})[key[len(prefix) :]] = value
                break
    return result


def evaluations_from_log(log_history: Iterable[Mapping[str, Any]], splits: Sequence[str]) -> list[Evaluation]:
    """The evaluations of a Trainer ``state.log_history`` (or of a version-1 ``evaluations`` list), in order."""
    evaluations = []
    for entry in log_history:
        for split, metrics in split_metrics(entry, splits).items():
            evaluations.append(Evaluation(int(entry.get("step", 0)), entry.get("epoch"), split, metrics))
    return evaluations


def losses_from_log(log_history: Iterable[Mapping[str, Any]]) -> list[LossLog]:
    """The training-loss entries of a Trainer ``state.log_history``."""
    return [
        LossLog(**{key: entry[key] for key in _LOSS_KEYS if key in entry})
        for entry in log_history
        if "loss" in entry
    ]


def metric_curve(evaluations: Iterable[Evaluation], metric: str, split: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``metric`` on ``split`` at each evaluation, sorted by step, finite values only."""
    points = sorted(
        (evaluation.step, float(value))
        for evaluation in evaluations
        if evaluation.split == split
        and (value := evaluation.metrics.get(metric)) is not None
        and math.isfinite(float(value))
    )
    return [step for step, _ in points], [value for _, value in points]


# -- JSON -------------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON values: enums by value, dataclasses as dicts, non-finite floats as null (the JSON of a run's
    arguments and Trainer metrics: whatever ``json.dumps`` cannot write is written as its text)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    if hasattr(value, "item"):  # numpy / torch scalars
        return _jsonable(value.item())
    return str(value)
