"""Resuming the fine-tune job: a run killed with SIGKILL after a checkpoint and started again with the same
command continues from that checkpoint and ends exactly where the uninterrupted run ends (CPU, bit for bit),
its L2-SP anchors still the pretrained weights; and the decisions around it (incomplete checkpoints, other
arguments, starting over), each before any training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.results import read_results
from transformers_fine_tuning.resume import ARGUMENTS_FILE, complete_checkpoints, plan_resume

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SAVE_STEPS, MAX_STEPS = 3, 12


def job_command(model: str, glue_dir: Path, output_dir: Path, *flags: str) -> list[str]:
    return [
        sys.executable, "-m", "transformers_fine_tuning.fine_tune",
        "--model_name_or_path", model, "--data_dir", str(glue_dir / "RTE"), "--output_dir", str(output_dir),
        "--max_train_samples", "96", "--max_eval_samples", "16", "--max_seq_length", "128",
        "--per_device_train_batch_size", "8", "--max_steps", str(MAX_STEPS), "--learning_rate", "5e-5",
        "--optim", "adamw_l2sp", "--l2sp_pretrained", "0.1", "--mixout", "0.1",
        "--eval_strategy", "steps", "--eval_steps", "4", "--logging_steps", "1",
        "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS), "--save_final_model", "true",
        "--seed", "5", "--disable_tqdm", "true", "--use_cpu", "true", *flags,
    ]  # fmt: skip


def run_job(command: list[str]) -> subprocess.CompletedProcess:
    process = subprocess.run(command, env=OFFLINE, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    return process


def kill_after_first_checkpoint(command: list[str], output_dir: Path, log: Path) -> None:
    """Start the job and SIGKILL it as soon as its first checkpoint is complete (trainer_state.json is the
    Trainer's last file of a checkpoint), before it can finish."""
    with open(log, "w") as stream:
        process = subprocess.Popen(command, env=OFFLINE, stdout=stream, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not complete_checkpoints(output_dir):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 600 s"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (output_dir / "results.json").exists(), "the run finished before it could be killed"


def test_killed_run_resumes_bit_identical_with_pretrained_anchors(tmp_path, minilm_path, glue_dir):
    whole, cut = tmp_path / "uninterrupted", tmp_path / "interrupted"
    run_job(job_command(minilm_path, glue_dir, whole))
    kill_after_first_checkpoint(job_command(minilm_path, glue_dir, cut), cut, tmp_path / "killed.log")
    reached = [int(path.name.split("-")[1]) for path in complete_checkpoints(cut)]
    assert reached and reached[-1] < MAX_STEPS

    resumed = run_job(job_command(minilm_path, glue_dir, cut))  # the same command again
    assert f"resuming from {cut / f'checkpoint-{reached[-1]}'} (step {reached[-1]})" in resumed.stderr

    expected, got = read_results(whole), read_results(cut)
    assert expected.resumed_from is None
    assert got.resumed_from is not None and got.resumed_from.step == reached[-1]
    assert got.global_step == expected.global_step == MAX_STEPS
    assert [entry.step for entry in got.train_loss_history] == list(range(1, MAX_STEPS + 1))
    assert got.train_loss_history == expected.train_loss_history  # every loss, bit for bit
    assert [(e.step, e.metrics["accuracy"], e.metrics["loss"]) for e in got.evaluations] == [
        (e.step, e.metrics["accuracy"], e.metrics["loss"]) for e in expected.evaluations
    ]
    assert got.metrics["validation"]["accuracy"] == expected.metrics["validation"]["accuracy"]

    final_expected, final_got = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    assert final_got.keys() == final_expected.keys()
    assert [name for name in final_got if not torch.equal(final_got[name], final_expected[name])] == []

    # the anchors of the resumed run's last checkpoint are the pretrained weights, not where it resumed
    pretrained = load_file(Path(minilm_path) / "model.safetensors")
    optimizer = torch.load(cut / f"checkpoint-{MAX_STEPS}" / "optimizer.pt", weights_only=True)
    checked = 0
    for group in optimizer["param_groups"]:
        for index, name in zip(group["params"], group["param_names"], strict=True):
            if group["l2sp"] > 0:
                anchor = optimizer["state"][index]["anchor"]
                assert torch.equal(anchor, pretrained[name.removeprefix("bert.")]), name
                checked += 1
    assert checked == sum(1 for name in pretrained if name != "embeddings.position_ids")
    # the Mixout targets are not saved (the model loads without Mixout); the resumed run recomputed them from
    # the pretrained model, so it ended bitwise where the uninterrupted one did (above)
    assert not any("mixout" in name for name in final_got)


# -- the decisions, before any training ------------------------------------------------------------------------


def fake_checkpoint(output_dir: Path, step: int, *, complete: bool = True) -> Path:
    checkpoint = output_dir / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"")
    state = json.dumps({"global_step": step, "log_history": []})
    (checkpoint / "trainer_state.json").write_text(state if complete else state[:10])  # cut off mid-write
    return checkpoint


ARGUMENTS = {
    "training": {"learning_rate": 2e-5, "seed": 1, "disable_tqdm": False},
    "data": {"task_name": "rte"},
}


def test_plan_resumes_from_the_last_complete_checkpoint(tmp_path):
    fake_checkpoint(tmp_path, 3)
    fake_checkpoint(tmp_path, 6)
    cut_off = fake_checkpoint(tmp_path, 9, complete=False)
    (tmp_path / ARGUMENTS_FILE).write_text(json.dumps(ARGUMENTS))
    changed_but_harmless = {**ARGUMENTS, "training": {**ARGUMENTS["training"], "disable_tqdm": True}}
    plan = plan_resume(tmp_path, None, changed_but_harmless)
    assert (plan.checkpoint, plan.step, plan.remove, plan.explicit) == (
        tmp_path / "checkpoint-6",
        6,
        (cut_off,),
        False,
    )
    plan.apply(tmp_path)
    assert not cut_off.exists() and (tmp_path / "checkpoint-6").exists()
    assert json.loads((tmp_path / ARGUMENTS_FILE).read_text()) == changed_but_harmless


def test_plan_refuses_checkpoints_of_other_arguments(tmp_path):
    fake_checkpoint(tmp_path, 3)
    (tmp_path / ARGUMENTS_FILE).write_text(json.dumps(ARGUMENTS))
    other = {**ARGUMENTS, "training": {**ARGUMENTS["training"], "learning_rate": 3e-5}}
    with pytest.raises(
        ValueError, match=r"training\.learning_rate: 2e-05 -> 3e-05.*--resume_from_checkpoint false"
    ):
        plan_resume(tmp_path, None, other)
    # asked for explicitly, the checkpoint is the user's choice
    assert plan_resume(tmp_path, "true", other).checkpoint == tmp_path / "checkpoint-3"


def test_plan_start_over_and_explicit_choices(tmp_path):
    first = fake_checkpoint(tmp_path / "run", 3)
    start_over = plan_resume(tmp_path / "run", "false", ARGUMENTS)
    assert start_over.checkpoint is None and start_over.remove == (first,)
    assert plan_resume(tmp_path / "run", None, ARGUMENTS, start_over=True).remove == (first,)
    assert plan_resume(tmp_path / "run", str(first), ARGUMENTS).checkpoint == first
    assert (
        plan_resume(tmp_path / "empty", None, ARGUMENTS).checkpoint is None
    )  # nothing to resume: from the start
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        plan_resume(tmp_path / "empty", "true", ARGUMENTS)
    broken = fake_checkpoint(tmp_path / "other", 5, complete=False)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        plan_resume(tmp_path / "run", str(broken), ARGUMENTS)


def test_job_refuses_checkpoints_of_other_arguments_before_loading_anything(tmp_path, glue_dir):
    """Checkpoints made with another seed: one line, exit status 2, and the checkpoints are left as they were."""
    out = tmp_path / "out"
    checkpoint = fake_checkpoint(out, 4)
    command = job_command("/nonexistent/model", glue_dir, out)
    recorded = parse_fine_tune_args(command[3:])  # the same command with its --seed 5
    recorded.data.pad_to_max_length = False  # as the job resolves it off XLA
    (out / ARGUMENTS_FILE).write_text(json.dumps(recorded.to_dict(), default=str))
    process = subprocess.run(
        [*command, "--seed", "6"], env=OFFLINE, capture_output=True, text=True, timeout=300
    )
    assert process.returncode == 2, process.stderr[-2000:]
    line = process.stderr.strip().splitlines()[-1]
    assert line.startswith("python -m transformers_fine_tuning.fine_tune: error: ")
    assert "training.seed: 5 -> 6" in line and "--resume_from_checkpoint false" in line
    assert "; and" not in line  # the seed is the only difference
    assert "Cannot load the model" not in line  # refused before the model is looked for
    assert (checkpoint / "trainer_state.json").is_file()
