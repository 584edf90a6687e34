"""The fine-tune job's results: what ``results.json`` holds of a run, read off its Trainer once training ends.

:func:`run_results` assembles the record (the metrics, the evaluations and the best one, diagnostics, predictions,
WiSE-FT's choice, where and when it ran) and judges it (:mod:`.failure`); :func:`final_metrics` gives the metrics
of the last step's evaluation, evaluating again only when that one is missing or the model has changed since.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .best import BEST_HELD_OUT, best_score
from .diagnostics import DiagnosticCallback
from .job_data import WISE_FT_HELD_OUT
from .provenance import device_info, library_versions
from .results import (
    PRUNED,
    MainMetric,
    ResumedFrom,
    RunResults,
    TaskInfo,
    WiseFT,
    evaluations_from_log,
    judge_results,
    losses_from_log,
    split_metrics,
)
from .tasks import Task, per_class_f1
from .techniques import WiSEFTCallback

if TYPE_CHECKING:
    from datasets import DatasetDict

    from .arguments import FineTuneArguments
    from .fine_tune import Setup
    from .trainer import TrainerOptimizerInit

__all__ = ["final_metrics", "run_results"]


def final_metrics(trainer: TrainerOptimizerInit, eval_splits: list[str]) -> dict[str, dict[str, Any]]:
    """The metrics of the evaluation at the last step, if the schedule made one (one log entry per evaluation
    split), else of an evaluation now."""
    step = trainer.state.global_step
    final = {
        e.split: e.metrics
        for e in evaluations_from_log(trainer.state.log_history, eval_splits)
        if e.step == step
    }
    # after WiSE-FT the model is no longer the one the last evaluation saw
    if set(final) != set(eval_splits) or _wise_ft(trainer) is not None:
        final = split_metrics(trainer.evaluate(), eval_splits)
    return {split: final[split] for split in eval_splits}


def run_results(
    args: FineTuneArguments,
    setup: Setup,
    train_metrics: dict[str, Any],
    metrics: dict[str, dict[str, Any]],
    evaluations_s: list[float],
) -> RunResults:
    """The run's results, as ``results.json`` will hold them; no ``metrics`` means interrupted."""
    task, trainer, eval_splits = setup.task, setup.trainer, setup.eval_splits
    step = trainer.state.global_step
    main_split = eval_splits[0]
    diagnostics = _diagnostics(trainer)
    predictions = setup.predictions.predictions_at(step) if metrics else {}
    judged = bool(metrics)
    evaluations = evaluations_from_log(trainer.state.log_history, eval_splits)
    results = RunResults(
        status="completed" if judged else "interrupted",
        **_identity(args, setup),
        main_metric=MainMetric(
            task.main_metric, main_split, metrics.get(main_split, {}).get(task.main_metric)
        ),
        failed=False,  # judged below, once the results hold what the verdict reads
        stopped_early=_stopped_early(diagnostics),
        metrics=metrics,
        constant_baseline=setup.constant_baselines,
        evaluations=evaluations,
        best=best_score(
            evaluations,
            task.main_metric,
            main_split,
            select_on=BEST_HELD_OUT if BEST_HELD_OUT in eval_splits else None,
        ),
        train_loss_history=losses_from_log(trainer.state.log_history),
        train_metrics=train_metrics,
        num_examples={split: len(setup.raw[split]) for split in setup.raw},
        global_step=step,
        **_circumstances(args, setup, evaluations_s),
        diagnostics=diagnostics,
        predictions=predictions,
        labels={split: _plain(setup.raw[split]["label"]) for split in predictions},
        task_info=TaskInfo(
            kind=task.kind,
            regression=task.is_regression,
            label_names=[] if task.is_regression else list(task.label_names),
            text_columns=list(task.text_columns),
        ),
        wise_ft=_wise_ft_results(_wise_ft(trainer), setup),
        per_class_f1=_per_class_f1(task, predictions, setup.raw),
    )
    if judged:
        verdict = judge_results(results)
        results = dataclasses.replace(results, failed=verdict.failed, failure=verdict)
    return RunResults.from_dict(results.to_dict())  # as JSON has it: what run returns is what the file holds


def _identity(args: FineTuneArguments, setup: Setup) -> dict[str, Any]:
    """Which run this is: the task, the model, the recipe and the seeds."""
    return {
        "task": setup.task.name,
        "model": args.model.model_name_or_path,
        "model_type": setup.trainer.model.config.model_type,
        "recipe": args.recipe.name if args.recipe else None,
        "seed": args.training.seed,
        "data_seed": args.training.data_seed,
        "dropout_seed": args.training.dropout_seed,
        "train_subset_seed": args.data.train_subset_seed,
    }


def _circumstances(args: FineTuneArguments, setup: Setup, evaluations_s: list[float]) -> dict[str, Any]:
    """How the run ran: its time, phase by phase, the checkpoint it resumed from, the device, the libraries,
    the arguments and the settings they resolved to."""
    trainer, resume = setup.trainer, setup.resume
    return {
        "wall_time_s": setup.stopwatch.total_s(),
        "started_at": setup.started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "resumed_from": None
        if resume.checkpoint is None
        else ResumedFrom(str(resume.checkpoint), resume.step),
        "device": device_info(args.training.device, args.training.world_size),
        "versions": library_versions(),
        "arguments": args.to_dict(),
        "effective": {
            "max_seq_length": args.data.max_seq_length,
            "pad_to_max_length": args.data.pad_to_max_length,
            "optimizer": type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__,
        },
        "timings": {
            **setup.stopwatch.phases,
            "evaluations_s": evaluations_s,
            "total_s": setup.stopwatch.total_s(),
        },
    }


def _diagnostics(trainer: TrainerOptimizerInit) -> dict[str, Any]:
    """The reports of the run's diagnostic callbacks, merged."""
    diagnostics = {}
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, DiagnosticCallback):
            diagnostics.update(callback.report())
    return diagnostics


def _stopped_early(diagnostics: dict[str, Any]) -> str | None:
    """Why the run stopped before its last step: ``non_finite``, a pruning test (:data:`~.results.PRUNED`), or
    ``None``."""
    if diagnostics.get("non_finite"):
        return "non_finite"
    return next((test for test in PRUNED if (diagnostics.get(test) or {}).get("stopped")), None)


def _per_class_f1(task: Task, predictions: dict[str, Any], raw: DatasetDict) -> dict[str, dict[str, float]]:
    """Each predicted split's F1 per class; none for regression."""
    if task.is_regression:
        return {}
    return {split: per_class_f1(task, values, raw[split]["label"]) for split, values in predictions.items()}


def _plain(column: Any) -> list[float]:
    """A ``datasets`` label column as a plain list (read in one go, not row by row)."""
    return list(column[:])


def _wise_ft(trainer: TrainerOptimizerInit) -> WiSEFTCallback | None:
    """The WiSE-FT callback that interpolated the trained model, if one did."""
    return next(
        (
            callback
            for callback in trainer.callback_handler.callbacks
            if isinstance(callback, WiSEFTCallback) and callback.alpha_chosen is not None
        ),
        None,
    )


def _wise_ft_results(callback: WiSEFTCallback | None, setup: Setup) -> WiseFT | None:
    """WiSE-FT's record: the α, the grid it was chosen from with its scores, the held-out examples."""
    if callback is None:
        return None
    return WiseFT(
        alpha=callback.alpha_chosen,
        alphas=list(callback.scores),
        scores=list(callback.scores.values()),
        metric=callback.metric,
        held_out_examples=len(setup.raw[WISE_FT_HELD_OUT]) if WISE_FT_HELD_OUT in setup.raw else 0,
        source=callback.source,
    )
