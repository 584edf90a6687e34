"""Data-parallel fine-tune.py with ``torchrun --nproc_per_node 2`` on CPU (gloo): both ranks get the same
optimizer groups and anchors and end with identical weights — also with NoisyTune, an EMA, R3F and WiSE-FT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def test_two_ranks_end_with_identical_weights(tmp_path, minilm_path, glue_dir):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", str(WORKER),
        "--model_name_or_path", minilm_path, "--task_name", "rte", "--data_dir", str(glue_dir / "RTE"),
        "--max_train_samples", "32", "--max_eval_samples", "16", "--max_seq_length", "64",
        "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--use_cpu", "true",
        "--optim", "adamw_l2sp", "--l2sp_pretrained", "0.1", "--reinit_layers", "1", "--mixout", "0.1",
        "--layer_decay", "0.9", "--learning_rate", "1e-4", "--output_dir", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["backend"] == "gloo"
    # 32 examples, 2 ranks × batch 4: 4 optimizer steps on each rank
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 4
    assert ranks[0]["groups"] == ranks[1]["groups"]
    assert ranks[0]["num_anchors"] > 0 and ranks[0]["anchors"] == ranks[1]["anchors"]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    results = json.loads((out / "results.json").read_text())
    assert results["device"]["world_size"] == 2 and results["global_step"] == 4


def test_two_ranks_agree_on_noise_average_and_wise_ft_alpha(tmp_path, tiny_bert_dir, glue_dir):
    """Every rank draws the same NoisyTune noise, keeps the same EMA (no communication), adds R3F through the
    unwrapped model (its gradients all-reduced with the task loss's) and chooses the same WiSE-FT α (held-out
    predictions gathered over the ranks)."""
    out = tmp_path / "ddp-stabilizers"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519", str(WORKER),
        "--model_name_or_path", tiny_bert_dir, "--task_name", "rte", "--data_dir", str(glue_dir / "RTE"),
        "--max_train_samples", "40", "--max_eval_samples", "16", "--max_seq_length", "32",
        "--per_device_train_batch_size", "4", "--num_train_epochs", "1", "--use_cpu", "true",
        "--optim", "adamw_l2sp", "--l2sp_pretrained", "0.1", "--noisytune", "0.15", "--ema_half_life", "0.5",
        "--r3f_lambda", "1", "--wise_ft_alphas", "0,0.5,1", "--wise_ft_held_out", "0.25",
        "--learning_rate", "1e-3", "--output_dir", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    # 30 training examples (10 held out), 2 ranks × batch 4: 4 optimizer steps on each rank
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 4
    assert ranks[0]["num_anchors"] > 0 and ranks[0]["anchors"] == ranks[1]["anchors"]
    assert ranks[0]["num_averages"] > 0 and ranks[0]["averages"] == ranks[1]["averages"]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    results = json.loads((out / "results.json").read_text())
    assert results["num_examples"]["wise_ft_held_out"] == 10 and results["num_examples"]["train"] == 30
    assert results["wise_ft"]["alpha"] in (0.0, 0.5, 1.0) and len(results["wise_ft"]["scores"]) == 3
