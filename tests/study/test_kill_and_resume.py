"""A study killed with SIGKILL in the middle, then resumed: the store stays consistent, the run that was cut off
runs again (from its last checkpoint when it saved one), the finished ones do not, and every run ends recorded
exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from transformers_fine_tuning.resume import checkpoint_step, complete_checkpoints
from transformers_fine_tuning.study import StudyStore, load_spec
from transformers_fine_tuning.study.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def completed_runs(store_path: Path) -> int:
    if not store_path.exists():
        return 0
    with StudyStore(store_path) as store:
        return store.counts().completed


def test_killed_study_resumes_and_records_every_run_once(write_study, wait_until, capsys, tmp_path):
    path = write_study("killed")  # 2 recipes × 3 seeds = 6 runs
    spec = load_spec(path)
    with open(tmp_path / "killed.log", "w") as log:
        study = subprocess.Popen(
            [sys.executable, "scripts/study.py", "run", str(path), "--in-process", "--no-report"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def two_done() -> bool:
                assert study.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                return completed_runs(spec.store_path) >= 2

            wait_until(two_done, 300, "two runs of the study to complete")
        finally:
            study.send_signal(signal.SIGKILL)  # no chance to clean up
            study.wait()

    # the store is consistent: an intact database, every run in one known state
    connection = sqlite3.connect(spec.store_path)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    statuses = dict(connection.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    connection.close()
    assert sum(statuses.values()) == 6 and set(statuses) <= {"completed", "running", "pending"}
    assert 2 <= statuses["completed"] < 6
    with StudyStore(spec.store_path) as store:
        before = {run.run_id: run for run in store.runs()}
    cut_off = [run_id for run_id, run in before.items() if run.status == "running"]
    assert len(cut_off) <= 1  # the one run in flight when the process died
    stamps = {
        run_id: (Path(run.output_dir) / "results.json").stat().st_mtime_ns
        for run_id, run in before.items()
        if run.status == "completed"
    }

    # resume: the same command
    assert main(["run", str(path), "--in-process"]) == 0
    out = capsys.readouterr().out
    assert f"{len(cut_off)} found crashed" in out
    assert f"6 runs in the study, {statuses['completed']} already completed" in out

    connection = sqlite3.connect(spec.store_path)
    per_run = connection.execute("SELECT run_id, COUNT(*) FROM runs GROUP BY run_id").fetchall()
    connection.close()
    assert sorted(run_id for run_id, _ in per_run) == sorted(cell.run_id for cell in spec.cells())
    assert all(count == 1 for _, count in per_run)  # every run recorded exactly once
    with StudyStore(spec.store_path) as store:
        after = {run.run_id: run for run in store.runs()}
        assert store.counts().completed == 6
    for run_id, run in after.items():
        results = json.loads((Path(run.output_dir) / "results.json").read_text())
        assert (results["seed"], results["recipe"]) == (run.seed, run.recipe) and run.main_metric is not None
        # the cut-off run was tried a second time; the others ran once
        assert run.attempts == (2 if run_id in cut_off else 1), run_id
    # runs finished before the kill were not run again
    assert stamps == {
        run_id: (Path(after[run_id].output_dir) / "results.json").stat().st_mtime_ns for run_id in stamps
    }
    assert (spec.output_dir / "summary.csv").is_file()


def test_a_crashed_run_resumes_from_its_last_checkpoint(
    write_study, minilm_path, glue_dir, tmp_path, wait_until, capsys
):
    """The study (and the run it executes in a subprocess) killed with SIGKILL after the run's first checkpoint:
    the next ``run`` finds the run crashed, and the run continues from that checkpoint, not from step 0."""
    path = write_study(
        "checkpointed",
        recipes=["l2sp"],
        seeds=[0],
        arguments={
            "model_name_or_path": minilm_path, "data_dir": str(glue_dir), "max_train_samples": 64,
            "max_eval_samples": 16, "per_device_train_batch_size": 8, "max_steps": 8, "save_strategy": "steps",
            "save_steps": 2, "eval_strategy": "no", "logging_steps": 1, "use_cpu": True,
        },
    )  # fmt: skip
    [cell] = load_spec(path).cells()
    run_dir = Path(cell.output_dir)
    with open(tmp_path / "study.log", "w") as log:
        study = subprocess.Popen(
            [sys.executable, "-m", "transformers_fine_tuning.study", "run", str(path), "--no-report"],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the study and the run it started
        )
    try:

        def checkpointed() -> bool:
            assert study.poll() is None, (tmp_path / "study.log").read_text()[-3000:]
            return bool(complete_checkpoints(run_dir))

        wait_until(checkpointed, 600, "the run's first checkpoint")
    finally:
        os.killpg(study.pid, signal.SIGKILL)
        study.wait()
    assert not (run_dir / "results.json").exists(), "the run finished before the study was killed"
    reached = checkpoint_step(complete_checkpoints(run_dir)[-1])

    assert main(["run", str(path), "--no-report"]) == 0
    with StudyStore(load_spec(path).store_path) as store:
        [run] = store.runs()
        results = store.results(run.run_id)
    assert (run.status, run.attempts, run.resumed_from_step) == ("completed", 2, reached)
    assert results.resumed_from.step == reached and results.global_step == 8
    assert [entry.step for entry in results.train_loss_history] == list(range(1, 9))  # the whole history
    log = (run_dir / "log.txt").read_text()
    assert log.count("-m transformers_fine_tuning.fine_tune --recipe l2sp") == 2  # both attempts, one log
    assert f"resuming from {run_dir / f'checkpoint-{reached}'} (step {reached})" in log
    capsys.readouterr()
    assert main(["status", str(path)]) == 0
    header, row = capsys.readouterr().out.splitlines()[2:4]
    assert header.split()[:7] == ["task", "recipe", "completed", "failed", "runs", "resumed", "errors"]
    assert row.split()[:2] == ["rte", "l2sp"] and row.split()[4] == "1"  # 1/1 completed, 1 resumed
