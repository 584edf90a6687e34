"""SIGTERM and SIGINT during training: a resumable checkpoint at the next step boundary, results.json with
status "interrupted", exit status 143 / 130; the same command resumes it; in a study the interrupted run is
resumed, not restarted. And the study store's recovery: a rebuild from the run directories, a hash that key
order does not change, a status that says when the study file changed, a run that exits non-zero on errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from transformers_fine_tuning.results import read_results
from transformers_fine_tuning.resume import complete_checkpoints
from transformers_fine_tuning.study import StudyStore, load_spec
from transformers_fine_tuning.study.cli import main as study_main

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def job(model: str, glue_dir: Path, output_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "transformers_fine_tuning.fine_tune", "--model_name_or_path", model,
        "--data_dir", str(glue_dir / "RTE"), "--output_dir", str(output_dir), "--max_train_samples", "160",
        "--max_eval_samples", "16", "--max_steps", "20", "--logging_steps", "1", "--disable_tqdm", "true",
        "--use_cpu", "true",
    ]  # fmt: skip


def started_training(log: Path) -> bool:
    return "'loss'" in log.read_text(errors="replace")


@pytest.mark.parametrize(
    ("signum", "status", "resume"), [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)]
)
def test_a_signal_saves_a_checkpoint_and_the_same_command_resumes(
    tmp_path, minilm_path, glue_dir, signum, status, resume
):
    out, log = tmp_path / "out", tmp_path / "log.txt"
    with open(log, "w") as stream:
        process = subprocess.Popen(
            job(minilm_path, glue_dir, out), env=OFFLINE, stdout=stream, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 600
    while not started_training(log):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    process.send_signal(signum)
    assert process.wait(timeout=300) == status, log.read_text()[-3000:]
    interrupted = read_results(out)
    [checkpoint] = complete_checkpoints(out)
    stopped = interrupted.global_step
    assert (
        interrupted.status == "interrupted"
        and 0 < stopped < 20
        and checkpoint.name == f"checkpoint-{stopped}"
    )
    assert interrupted.metrics == {} and not interrupted.failed
    assert f"interrupted by signal {signum}; checkpoint at step {stopped}" in log.read_text()
    if not resume:  # (resuming is the same for either signal)
        return

    resumed = subprocess.run(
        job(minilm_path, glue_dir, out), env=OFFLINE, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # the interrupted results.json does not block
    results = read_results(out)
    assert results.status == "completed" and results.global_step == 20
    assert results.resumed_from.step == stopped
    assert [entry.step for entry in results.train_loss_history] == list(range(1, 21))


def test_an_interrupted_study_run_resumes_from_its_checkpoint(tmp_path, minilm_path, glue_dir, capsys):
    study = {
        "name": "interrupted",
        "output_dir": str(tmp_path / "study"),
        "tasks": ["rte"],
        "recipes": ["devlin2019"],
        "seeds": [0],
        "arguments": {
            "model_name_or_path": minilm_path, "data_dir": str(glue_dir), "max_train_samples": 160,
            "max_eval_samples": 16, "max_steps": 20, "logging_steps": 1, "use_cpu": True,
        },
    }  # fmt: skip
    path = tmp_path / "interrupted.yaml"
    path.write_text(yaml.safe_dump(study))
    [cell] = load_spec(path).cells()
    log = Path(cell.output_dir) / "log.txt"
    with open(tmp_path / "study.log", "w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "transformers_fine_tuning.study", "run", str(path), "--no-report"],
            env=OFFLINE, stdout=stream, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 600
    while not (log.exists() and started_training(log)):
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "study.log").read_text()[
            -3000:
        ]
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)  # to the study: it passes the signal on to its run, once
    assert process.wait(timeout=300) == 130
    stopped = read_results(cell.output_dir).global_step
    assert complete_checkpoints(cell.output_dir)[-1].name == f"checkpoint-{stopped}"
    with StudyStore(load_spec(path).store_path) as store:
        [run] = store.runs()
    assert (run.status, run.attempts) == ("pending", 0)  # the claim given back, the attempt not counted

    assert study_main(["run", str(path), "--no-report"]) == 0
    with StudyStore(load_spec(path).store_path) as store:
        [run] = store.runs()
    assert (run.status, run.resumed_from_step, run.attempts) == ("completed", stopped, 1)


def small_study(tmp_path: Path, tiny_bert_dir: str, glue_dir: Path, **keys) -> Path:
    content = {
        "name": "store",
        "output_dir": str(tmp_path / "study"),
        "tasks": ["rte"],
        "recipes": ["devlin2019"],
        "seeds": "0-1",
        "arguments": {
            "model_name_or_path": tiny_bert_dir, "data_dir": str(glue_dir), "max_train_samples": 16,
            "max_eval_samples": 8, "max_steps": 1, "max_seq_length": 32, "use_cpu": True,
        },
    }  # fmt: skip
    content.update(keys)
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def test_a_damaged_store_is_rebuilt_from_the_run_directories(tmp_path, tiny_bert_dir, glue_dir, capsys):
    path = small_study(tmp_path, tiny_bert_dir, glue_dir)
    assert study_main(["run", str(path), "--in-process", "--no-report"]) == 0
    store_path = load_spec(path).store_path
    with StudyStore(store_path) as store:
        before = {run.run_id: run.main_metric for run in store.runs()}
    for suffix in ("-wal", "-shm"):
        Path(f"{store_path}{suffix}").unlink(missing_ok=True)
    store_path.write_bytes(b"\x00garbage" * 512)
    capsys.readouterr()
    assert study_main(["status", str(path)]) == 2
    assert "tft-study rebuild" in capsys.readouterr().err
    assert study_main(["rebuild", str(path)]) == 0
    assert "2 finished run(s) recovered" in capsys.readouterr().out
    with StudyStore(store_path) as store:
        assert {run.run_id: run.main_metric for run in store.runs("completed")} == before
    assert [p.name for p in store_path.parent.glob("study.sqlite.replaced-*")]  # the damaged file kept


def test_key_order_does_not_change_a_study_and_a_changed_file_is_reported(
    tmp_path, tiny_bert_dir, glue_dir, capsys
):
    path = small_study(tmp_path, tiny_bert_dir, glue_dir)
    assert study_main(["run", str(path), "--in-process", "--no-report"]) == 0
    content = yaml.safe_load(path.read_text())
    content["arguments"] = dict(
        reversed(list(content["arguments"].items()))
    )  # the same study, keys reordered
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    capsys.readouterr()
    assert study_main(["run", str(path), "--in-process", "--no-report"]) == 0  # not "changed"
    assert "2 already completed" in capsys.readouterr().out
    content["arguments"]["max_steps"] = 2
    content["seeds"] = "0-2"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    assert study_main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "the study file changed since the store was last run: 1 new run(s), 2 with other arguments" in out


def test_a_study_with_runs_that_ended_in_an_error_exits_non_zero(tmp_path, tiny_bert_dir, glue_dir, capsys):
    broken = {"name": "broken", "task_name": "rte", "arguments": {"data_dir": str(tmp_path / "none")}}
    path = small_study(tmp_path, tiny_bert_dir, glue_dir, tasks=["rte", broken], seeds=[0])
    assert study_main(["run", str(path), "--in-process", "--no-report", "--max-attempts", "1"]) == 1
    error = capsys.readouterr().err
    assert "1 run(s) ended in an error" in error and "status" in error
    with StudyStore(load_spec(path).store_path) as store:
        assert json.dumps(sorted(run.status for run in store.runs())) == '["completed", "error"]'
