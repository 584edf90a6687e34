"""The benchmark scripts under ``scripts/`` run end to end with tiny settings, and rewrite only their own
section of BENCHMARKS.md. No timing is asserted: the figures live in BENCHMARKS.md, measured on a quiet
machine; here only what the scripts compute deterministically is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = PROJECT_ROOT / "scripts"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture
def bench_common(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import bench_common

    return bench_common


@pytest.fixture
def bench_fine_tune(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import bench_fine_tune

    return bench_fine_tune


def run_script(name: str, *args: str) -> str:
    """Run ``scripts/<name>`` with ``--no-write``; its stdout (the table)."""
    process = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args, "--no-write"],
        cwd=PROJECT_ROOT,
        env=OFFLINE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    return process.stdout


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every data row of the Markdown tables in ``markdown`` (header rows left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    data = [
        line
        for i, line in enumerate(lines)
        if not line.startswith("|---") and not (i + 1 < len(lines) and lines[i + 1].startswith("|---"))
    ]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in data]


def test_update_rewrites_only_its_own_section(bench_common, tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        "# Benchmarks\n\nhand-written analysis\n\n"
        "<!-- bench:a:begin -->\nold a\n<!-- bench:a:end -->\n\nmore analysis\n\n"
        "<!-- bench:b:begin -->\nold b\n<!-- bench:b:end -->\n",
        encoding="utf-8",
    )
    bench_common.update_benchmarks_md("a", "new a\n", path=path)
    bench_common.update_benchmarks_md("c", "new c", path=path)
    text = path.read_text(encoding="utf-8")
    assert "old a" not in text and "<!-- bench:a:begin -->\nnew a\n<!-- bench:a:end -->" in text
    assert "hand-written analysis" in text and "more analysis" in text and "old b" in text
    assert text.rstrip().endswith("<!-- bench:c:begin -->\nnew c\n<!-- bench:c:end -->")


def test_spread_is_median_and_range(bench_common):
    assert bench_common.fmt_spread([3.0, 1.0, 2.0, 10.0, 4.0], "{:.1f}") == "3.0 [1.0–10.0]"
    assert bench_common.fmt_spread([2.0]) == "2.00 [2.00–2.00]"


def test_padded_tokens_counts_each_batch_at_its_longest(bench_fine_tune, monkeypatch):
    monkeypatch.setattr(bench_fine_tune, "BATCH_SIZE", 2)
    lengths = [10, 128, 20, 30]
    per_example, share_full = bench_fine_tune.padded_tokens(lengths, [0, 1, 2, 3])
    assert per_example == (2 * 128 + 2 * 30) / 4
    assert share_full == 0.5
    per_example, share_full = bench_fine_tune.padded_tokens(lengths, [0, 2, 3, 1])
    assert per_example == (2 * 20 + 2 * 128) / 4


def test_megabatch_is_what_the_length_grouped_sampler_sorts(bench_fine_tune):
    """The throughput runs train one mega-batch of steps, so each sees the grouped path's real batch mix."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = list(range(1, 2491))  # RTE's size: mega-batches of 38 batches of 16
    steps = bench_fine_tune.megabatch_steps(len(lengths))
    assert steps == 38
    order = get_length_grouped_indices(lengths, 16, generator=torch.Generator().manual_seed(0))
    chunk = [lengths[i] for i in order[: steps * 16]]
    assert chunk[1:] == sorted(chunk[1:], reverse=True)  # sorted within the mega-batch (longest moved first)


def test_optimizer_benchmark_runs_and_counts_one_anchor_copy():
    out = run_script(
        "bench_optimizer.py",
        *("--models", "minilm", "--kernels", "adamw-fused", "l2sp-default"),
        *("--repetitions", "1", "--steps", "1", "--max-load", "0"),
    )
    assert "torch AdamW, fused" in out and "AdamWL2SP, default (fused)" in out
    assert "87 (= one copy of the anchored parameters)" in out


@pytest.mark.parametrize("extra", [[], ["--fresh-process"]], ids=["one-process", "fresh-process"])
def test_trainer_benchmark_runs_every_variant_on_the_same_losses(extra):
    out = run_script(
        "bench_trainer.py", "--repetitions", "1", "--steps", "1", "--warmup", "0", "--max-load", "0", *extra
    )
    rows = {row[0]: row for row in table_rows(out)}
    assert len(rows) == 5, out
    losses = {label: row[-1] for label, row in rows.items()}
    # the subclass with nothing to do trains bit for bit like Trainer; the diagnostics only observe
    assert losses["Trainer + AdamW (fused)"] == losses["TrainerOptimizerInit + AdamW (fused)"]
    assert "Trainer + AdamW (fused) on the same 18 fine-tuning groups" in rows  # the groups' own cost
    l2sp = "TrainerOptimizerInit + AdamWL2SP + L2SP/LLRD/Reinit callbacks"
    assert losses[l2sp] == losses["… + diagnostics (GradNorm, LossSpike, NonFiniteGuard, EarlyFailure)"]


def test_fine_tune_benchmark_padding_and_short_runs(glue_dir):
    out = run_script(
        "bench_fine_tune.py",
        *("--parts", "padding", "throughput", "--tasks", "mrpc", "--paths", "static", "dynamic"),
        *("--steps", "2", "--repetitions", "1", "--max-load", "0"),
    )
    rows = table_rows(out)
    padding = [row for row in rows if len(row) == 6]
    assert [row[2] for row in padding] == ["static", "dynamic", "grouped"]  # the analysis covers every path
    static, dynamic, grouped = (float(row[5]) for row in padding)
    assert static == 1.0 and 1.5 < dynamic < grouped  # MRPC has no tail at 128 tokens; grouping packs tighter
    throughput = [row for row in rows if len(row) == 7]
    assert [row[1] for row in throughput] == ["static", "dynamic"]
    assert all(row[2] == "2 × 16" for row in throughput)


def test_stabilizers_benchmark_runs_every_variant_and_counts_one_average_copy():
    out = run_script(
        "bench_stabilizers.py", "--repetitions", "1", "--steps", "1", "--warmup", "0", "--max-load", "0"
    )
    rows = {row[0]: row for row in table_rows(out)}
    losses = {label: row[-1] for label, row in rows.items() if len(row) == 5}
    assert len(losses) == 4, out
    baseline = losses.pop("TrainerOptimizerInit + AdamW (fused)")
    # the averages only observe training; R3F changes the gradient, not the logged task loss's definition
    assert (
        losses["… + EMACallback(half_life=0.1)"]
        == losses["… + SWACallback(0): averaging every step"]
        == baseline
    )
    assert len([row for row in rows.values() if len(row) == 2]) == 4  # the one-time costs
    assert "holds 86.6 MiB: one copy of the 22,713,986 trainable parameters" in out


def test_evaluation_benchmark_sorted_batches_pad_fewer_tokens(glue_dir):
    out = run_script(
        "bench_evaluation.py",
        "--repetitions",
        "1",
        "--batch-sizes",
        "64",
        "--sets",
        "mrpc",
        "--max-load",
        "0",
    )
    rows = table_rows(out)
    assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
        ("mrpc", "408", "dataset", "64"),
        ("mrpc", "408", "sorted", "64"),
    ]
    dataset_order, length_sorted = (int(row[4].replace(",", "")) for row in rows)
    assert length_sorted < 0.8 * dataset_order  # the same examples in batches of similar lengths
    assert rows[0][6] == "1.00 [1.00–1.00]"  # the reference against itself


SMALL_STUDY = (
    "--train-examples",
    "16",
    "--epochs",
    "1",
    "--seeds",
    "0-1",
    "--recipes",
    "devlin2019",
    "--max-load",
    "0",
)
"""bench_study.py's smallest real study: two MiniLM runs on 16 RTE pairs, one epoch, without waiting for quiet."""


def test_study_benchmark_runs_both_conditions_with_identical_results(glue_dir):
    out = run_script(
        "bench_study.py",
        *SMALL_STUDY,
    )  # exits non-zero unless every run's metric and predictions are the same off and on
    rows = {row[0]: row for row in table_rows(out)}
    assert list(rows) == [
        "start-up and imports",
        "data and model load",
        "tokenisation",
        "training",
        "evaluation",
        "process start and exit (outside the job)",
        "**whole study**",
    ]
    whole = rows["**whole study**"]
    assert whole[2] == whole[4] == "100.0 %"
    parts = [float(row[1].replace(",", "")) for name, row in rows.items() if name != "**whole study**"]
    assert sum(parts) == pytest.approx(float(whole[1].replace(",", "")), rel=0.02)  # the parts add up
    assert "identical main metric and dev predictions in both conditions: 2 of 2 runs" in out


def test_study_variants_table_compares_each_way_with_the_first(glue_dir):
    """``--variants``: one line a variant with its ratio to the first; the fork server's runs are the same
    computation as today's, so its line says "identical" (it would name the tests if any metric differed)."""
    out = run_script(
        "bench_study.py",
        "--variants",
        "today",
        "fork-server",
        *SMALL_STUDY,
    )
    rows = {row[0]: row for row in table_rows(out)}
    assert list(rows) == ["today", "fork-server"]
    assert rows["today"][2] == "**1.000**" and rows["today"][5].endswith("/2")
    assert rows["fork-server"][6] == "identical"
    assert float(rows["fork-server"][2].strip("*")) > 0
