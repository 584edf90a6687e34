"""The fine-tune job's tools for studies that decide: pruning a run an early test flags (the loss test, the dev
test), restarting until success, and one seed per source of randomness (head, data order, dropout, subset).
Tiny random BERT models on real RTE rows; a run that cannot learn is one with learning rate 0."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.fine_tune import RESTARTS_FILE, run, run_with_restarts
from transformers_fine_tuning.results import read_results
from transformers_fine_tuning.seeds import subset_indices
from transformers_fine_tuning.tasks import load_glue_dir
from transformers_fine_tuning.tasks.glue.export import write_glue_dir

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TINY = [
    "--max_train_samples", "32", "--max_eval_samples", "16", "--max_seq_length", "32",
    "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--logging_steps", "1",
    "--disable_tqdm", "true", "--use_cpu", "true", "--report_to", "none",
]  # fmt: skip


EVERY_3_STEPS = ("--eval_strategy", "steps", "--eval_steps", "3")


def job(tiny_bert: str, data_dir: Path, output_dir: Path, *flags: str):
    """One in-process run; its results."""
    args = parse_fine_tune_args(
        [
            "--model_name_or_path",
            tiny_bert,
            "--data_dir",
            str(data_dir),
            "--output_dir",
            str(output_dir),
            *TINY,
            *flags,
        ]
    )
    return run(args)[1]


def test_prune_loss_stops_a_run_that_cannot_learn(tiny_bert_dir, glue_dir, tmp_path):
    results = job(tiny_bert_dir, glue_dir / "RTE", tmp_path, "--learning_rate", "0", "--prune", "loss")
    verdict = results.diagnostics["early_failure"]
    assert verdict["flagged"] and verdict["stopped"]
    assert results.stopped_early == "early_failure" and results.failed
    assert results.global_step == verdict["step"] == math.ceil(0.3 * 8)  # 32 examples, batches of 4
    assert results.main_metric.value is not None  # evaluated where it stopped


@pytest.fixture
def unbeatable_rte(glue_dir, tmp_path) -> Path:
    """RTE rows whose dev set holds only one class: the best constant predictor scores 1.0, so
    every run's first dev evaluation is no better than it."""
    rte = load_glue_dir("rte", glue_dir)
    train = rte["train"].select(range(32))
    majority = max(set(train["label"]), key=list(train["label"]).count)
    dev = rte["validation"].filter(lambda row: row["label"] == majority).select(range(16))
    return write_glue_dir("rte", type(rte)({"train": train, "validation": dev}), tmp_path / "glue")


def test_prune_dev_stops_at_the_first_evaluation(tiny_bert_dir, unbeatable_rte, tmp_path):
    results = job(tiny_bert_dir, unbeatable_rte, tmp_path / "out", "--prune", "dev", *EVERY_3_STEPS)
    assert results.constant_baseline["validation"]["accuracy"] == 1.0
    verdict = results.diagnostics["dev_failure"]
    assert verdict == {
        "flagged": True,
        "step": 3,
        "value": verdict["value"],
        "baseline": 1.0,
        "stopped": True,
    }
    assert results.stopped_early == "dev_failure" and results.failed and results.global_step == 3


def test_diagnostics_record_both_early_tests_without_acting(tiny_bert_dir, unbeatable_rte, tmp_path):
    results = job(tiny_bert_dir, unbeatable_rte, tmp_path / "out", "--diagnostics", *EVERY_3_STEPS)
    assert results.diagnostics["dev_failure"]["flagged"] and not results.diagnostics["dev_failure"]["stopped"]
    assert results.diagnostics["early_failure"]["stopped"] is False
    assert results.stopped_early is None and results.global_step == 8


def test_restarts_try_new_seeds_and_resume_the_tally(tiny_bert_dir, glue_dir, tmp_path):
    args = parse_fine_tune_args(
        [
            "--model_name_or_path", tiny_bert_dir, "--data_dir", str(glue_dir / "RTE"), "--output_dir", str(tmp_path),
            *TINY, "--learning_rate", "0", "--prune", "loss", "--seed", "5", "--restarts", "1", "--max_runs", "3",
        ]
    )  # fmt: skip
    tally = run_with_restarts(args)
    assert [entry["seed"] for entry in tally["runs"]] == [5, 6, 7]  # none succeeded: every seed of the budget
    assert all(entry["failed"] and entry["stopped_early"] == "early_failure" for entry in tally["runs"])
    assert tally["successes"] == 0 and tally["compute_per_success_s"] is None
    assert json.loads((tmp_path / RESTARTS_FILE).read_text()) == json.loads(json.dumps(tally))
    assert [read_results(tmp_path / f"seed-{seed}").seed for seed in (5, 6, 7)] == [5, 6, 7]
    stamp = (tmp_path / "seed-6" / "results.json").stat().st_mtime_ns
    assert run_with_restarts(args)["runs"] == tally["runs"]  # started again: read back, not run again
    assert (tmp_path / "seed-6" / "results.json").stat().st_mtime_ns == stamp


def test_subset_seed_draws_a_random_subset(tiny_bert_dir, glue_dir, tmp_path):
    assert subset_indices(10, 4, seed=3) == subset_indices(10, 4, seed=3) != subset_indices(10, 4, seed=4)
    assert len(set(subset_indices(2490, 1000, seed=0))) == 1000 and subset_indices(5, 5, seed=1) == [
        0,
        1,
        2,
        3,
        4,
    ]

    def trained(name: str, *flags: str):
        return job(
            tiny_bert_dir, glue_dir / "RTE", tmp_path / name, "--learning_rate", "1e-3", "--seed", "1", *flags
        )

    first, subset, again = (
        trained("a"),
        trained("b", "--train_subset_seed", "4"),
        trained("c", "--train_subset_seed", "4"),
    )
    assert subset.num_examples["train"] == 32 and subset.train_subset_seed == 4
    assert subset.train_loss_history == again.train_loss_history != first.train_loss_history


def test_subset_seed_needs_a_subset_size(tiny_bert_dir, glue_dir, tmp_path):
    command = [sys.executable, "-m", "transformers_fine_tuning.fine_tune", "--model_name_or_path", tiny_bert_dir,
               "--data_dir", str(glue_dir / "RTE"), "--output_dir", str(tmp_path), "--train_subset_seed", "3"]  # fmt: skip
    process = subprocess.run(command, env=OFFLINE, capture_output=True, text=True, timeout=300)
    assert process.returncode == 2 and "--max_train_samples" in process.stderr.strip().splitlines()[-1]


def test_dropout_seed_moves_the_masks_not_the_head(tiny_bert_dir, glue_dir, tmp_path):
    """Learning rate 0: the weights stay as drawn, so the saved model is the initialisation, and the losses
    differ only through the dropout masks (the data order is --data_seed's, fixed here)."""

    def trained(name: str, *flags: str):
        out = tmp_path / name
        flags = ("--learning_rate", "0", "--data_seed", "9", "--save_final_model", "true", *flags)
        return job(tiny_bert_dir, glue_dir / "RTE", out, *flags), load_file(out / "model.safetensors")

    a, weights_a = trained("a", "--seed", "1", "--dropout_seed", "5")
    a_again, _ = trained("a-again", "--seed", "1", "--dropout_seed", "5")
    b, weights_b = trained("b", "--seed", "1", "--dropout_seed", "6")
    _, weights_c = trained("c", "--seed", "2", "--dropout_seed", "5")
    assert a.train_loss_history == a_again.train_loss_history  # reproducible
    assert a.train_loss_history != b.train_loss_history  # other masks
    assert torch.equal(weights_a["classifier.weight"], weights_b["classifier.weight"])  # the same head
    assert not torch.equal(weights_a["classifier.weight"], weights_c["classifier.weight"])  # --seed draws it
    assert (a.seed, a.data_seed, a.dropout_seed) == (1, 9, 5)
