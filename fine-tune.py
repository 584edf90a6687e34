#!/usr/bin/env python
"""Fine-tune a pretrained encoder on a GLUE task and write ``results.json`` to the output directory.

    python fine-tune.py                                   # ALBERT-large on RTE, the reference settings
    python fine-tune.py --model_name_or_path DIR --task_name mrpc --data_dir ../shared/glue/MRPC
    python fine-tune.py --recipe mosbach2021 --seed 3 --data_seed 7 --output_dir runs/rte-3-7
    python fine-tune.py config.yaml                       # the same flags as a YAML or JSON file

CUDA is used when present, a TPU through torch_xla when present, else the CPU. On a multi-core TPU, either
``python xla_spawn.py fine-tune.py ...`` (which calls ``_mp_fn``) or ``python fine-tune.py --xla_launch ...``.
``torchrun --nproc_per_node N fine-tune.py ...`` and ``accelerate launch`` give data-parallel training.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from datasets import DatasetDict
from transformers import DataCollatorWithPadding, default_data_collator, set_seed
from transformers.utils import is_torch_xla_available

from transformers_fine_tuning import DiagnosticCallback, TrainerOptimizerInit, prior_loss
from transformers_fine_tuning.arguments import FineTuneArguments, parse_fine_tune_args, xla_launch_requested
from transformers_fine_tuning.glue import (
    GlueTask,
    get_task,
    is_failed_run,
    load_task_datasets,
    majority_baseline,
    make_compute_metrics,
    tokenize_dataset,
)
from transformers_fine_tuning.modeling import load_model_and_tokenizer
from transformers_fine_tuning.results import (
    RESULTS_FILE,
    device_info,
    library_versions,
    training_history,
    write_json_atomic,
)

_LAUNCHED = "TFT_XLA_LAUNCHED"


class Setup(NamedTuple):
    task: GlueTask
    raw: DatasetDict
    eval_splits: list[str]
    trainer: TrainerOptimizerInit
    results_path: Path
    started_at: datetime
    start: float


def prepare(args: FineTuneArguments) -> Setup:
    """Everything that can fail on bad input, done before any training time is spent."""
    started_at, start = datetime.now(timezone.utc), time.perf_counter()
    data, training = args.data, args.training
    task = get_task(data.task_name)
    results_path = Path(training.output_dir) / RESULTS_FILE
    if results_path.exists() and not args.run.overwrite_results:
        raise ValueError(f"{results_path} exists; pass --overwrite_results or another --output_dir.")

    raw = load_task_datasets(
        task,
        data_dir=data.data_dir,
        train_file=data.train_file,
        validation_file=data.validation_file,
        cache_dir=args.model.cache_dir,
    )
    eval_splits = [split for split in task.eval_splits if split in raw]  # data files give MNLI one dev split
    limits = {"train": data.max_train_samples, **dict.fromkeys(eval_splits, data.max_eval_samples)}
    raw = DatasetDict(
        {
            split: raw[split].select(range(min(limit or len(raw[split]), len(raw[split]))))
            for split, limit in limits.items()
        }
    )

    set_seed(training.seed)  # the seed decides the new head's initialisation
    model, tokenizer = load_model_and_tokenizer(
        args.model.model_name_or_path,
        task,
        tokenizer_name=args.model.tokenizer_name,
        cache_dir=args.model.cache_dir,
    )
    # Static shapes pay only on XLA, where every new shape is a recompilation.
    if data.pad_to_max_length is None:
        data.pad_to_max_length = is_torch_xla_available()  # resolved here, so results.json records it
    with training.main_process_first(desc="tokenisation"):
        tokenized = tokenize_dataset(
            raw,
            tokenizer,
            task,
            max_seq_length=data.max_seq_length,
            pad_to_max_length=data.pad_to_max_length,
            num_proc=data.preprocessing_num_workers,
        )
    trainer = TrainerOptimizerInit(
        model=model,
        args=training,
        train_dataset=tokenized["train"],
        eval_dataset={split: tokenized[split] for split in eval_splits},
        processing_class=tokenizer,
        data_collator=default_data_collator if data.pad_to_max_length else DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(task),
        callbacks=[
            *args.fine_tuning.callbacks(),
            *args.diagnostics.callbacks(prior_loss(raw["train"]["label"], regression=task.is_regression)),
        ],
        optimizer_cls_and_kwargs=args.fine_tuning.optimizer_cls_and_kwargs(),
    )
    return Setup(task, raw, eval_splits, trainer, results_path, started_at, start)


def _split_metrics(metrics: dict, split: str) -> dict:
    prefix = f"eval_{split}_"
    return {key[len(prefix) :]: value for key, value in metrics.items() if key.startswith(prefix)}


def run(args: FineTuneArguments, setup: Setup | None = None) -> tuple[TrainerOptimizerInit, dict]:
    """One fine-tuning run: prepare (unless done), train, evaluate, write results.json."""
    task, raw, eval_splits, trainer, results_path, started_at, start = setup or prepare(args)

    train_result = trainer.train()
    losses, evaluations = training_history(trainer.state.log_history)
    # the evaluation at the last step, if the schedule made one (one log entry per evaluation split), else now
    final = {k: v for e in evaluations if e.get("step") == trainer.state.global_step for k, v in e.items()}
    if not all(_split_metrics(final, split) for split in eval_splits):
        final = trainer.evaluate()
    if args.run.save_final_model:
        trainer.save_model()

    metrics = {split: _split_metrics(final, split) for split in eval_splits}
    baseline = {
        split: majority_baseline(task, raw["train"]["label"], raw[split]["label"]) for split in eval_splits
    }
    main_split = eval_splits[0]
    diagnostics = {}
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, DiagnosticCallback):
            diagnostics.update(callback.report())
    non_finite = diagnostics.get("non_finite")
    results = {
        "schema_version": 1,
        "status": "completed",
        "task": task.name,
        "model": args.model.model_name_or_path,
        "model_type": trainer.model.config.model_type,
        "recipe": args.recipe.name if args.recipe else None,
        "seed": args.training.seed,
        "data_seed": args.training.data_seed if args.training.data_seed is not None else args.training.seed,
        "main_metric": {
            "name": task.main_metric,
            "split": main_split,
            "value": metrics[main_split].get(task.main_metric),
        },
        "failed": bool(non_finite) or is_failed_run(task, metrics[main_split], baseline[main_split]),
        "failed_definition": "final main metric on the first evaluation split <= the majority-class baseline's, "
        "or training stopped on a non-finite loss or gradient",
        "stopped_early": "non_finite"
        if non_finite
        else ("early_failure" if (diagnostics.get("early_failure") or {}).get("stopped") else None),
        "diagnostics": diagnostics,
        "metrics": metrics,
        "majority_baseline": baseline,
        "evaluations": evaluations,
        "train_loss_history": losses,
        "train_metrics": train_result.metrics,
        "num_examples": {split: len(raw[split]) for split in raw},
        "global_step": trainer.state.global_step,
        "wall_time_s": time.perf_counter() - start,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "device": device_info(args.training.device, args.training.world_size),
        "versions": library_versions(),
        "arguments": {
            "model": args.model,
            "data": args.data,
            "fine_tuning": args.fine_tuning,
            "diagnostics": args.diagnostics,
            "run": args.run,
            "training": args.training.to_dict(),
        },
    }
    if trainer.is_world_process_zero():
        write_json_atomic(results_path, results)
        print(f"fine-tune.py: {task.main_metric} {results['main_metric']['value']:.4f} -> {results_path}")
    return trainer, results


def main(argv: list[str] | None = None) -> dict | None:
    """Parse the arguments and run; bad input ends here with one line on stderr and exit status 2."""
    try:
        if not os.environ.get(_LAUNCHED) and xla_launch_requested(argv):
            return _xla_launch(argv)  # before parsing, which starts the XLA runtime; each process parses
        args = parse_fine_tune_args(argv)
        setup = prepare(args)
    except (ValueError, OSError) as error:
        print(f"fine-tune.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return run(args, setup)[1]


def _mp_fn(index: int, argv: list[str] | None = None) -> None:
    """Entry point of one TPU process, for ``xla_spawn.py`` and ``torch_xla.launch``."""
    main(argv)


def _xla_launch(argv: list[str] | None) -> None:
    """Start one process per TPU core; each runs ``main`` (the PJRT runtime picks the cores)."""
    import torch_xla

    os.environ[_LAUNCHED] = "1"
    torch_xla.launch(_mp_fn, args=(argv,))


if __name__ == "__main__":
    main()
