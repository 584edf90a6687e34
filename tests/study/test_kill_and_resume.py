"""A study killed with SIGKILL in the middle, then resumed: the store stays consistent, the run that was cut off
runs again, the finished ones do not, and every run ends recorded exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

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
