"""Runs started from the fork server (``--fork-server``): the job imported once, each run a child of its own."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from transformers_fine_tuning.study import ExecutionOptions, StudyStore, load_spec, run_study
from transformers_fine_tuning.study.run.forkserver import run_forked


def test_each_run_is_a_fresh_child_with_the_job_imported_and_a_crash_takes_nothing_else(tmp_path):
    log = tmp_path / "log.txt"
    reports = []
    for index in range(2):
        report = tmp_path / f"report-{index}.json"
        assert run_forked("forked_jobs", ["report", str(report)], log, {"OMP_NUM_THREADS": "1"}, 5) == 0
        reports.append(json.loads(report.read_text()))
    assert all(r["preloaded"] for r in reports)  # torch and transformers were there before the run began
    assert reports[0]["pid"] != reports[1]["pid"] != os.getpid()  # a process per run
    assert reports[0]["session"] != os.getsid(
        0
    )  # out of the terminal's session: Ctrl-C reaches the study only
    assert reports[0]["omp"] == "1"
    assert run_forked("forked_jobs", ["exit", "7"], log, None, 5) == 7
    assert run_forked("forked_jobs", ["abort"], log, None, 5) == -signal.SIGABRT
    after = tmp_path / "after.json"  # the server outlived the crash
    assert run_forked("forked_jobs", ["report", str(after)], log, None, 5) == 0 and after.exists()
    assert log.read_text().count("report written") == 3


def test_a_study_on_the_fork_server(write_study):
    spec = load_spec(write_study("forked", recipes=["devlin2019"], seeds="0-1"))
    counts = run_study(spec, ExecutionOptions(isolation="forkserver", poll_interval_s=0.2))
    assert counts.completed == 2 and counts.total == 2
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    for record in runs:
        directory = Path(record.output_dir)
        results = json.loads((directory / "results.json").read_text())
        assert results["timings"]["startup_s"] == 0  # no interpreter start, no imports: the server had them
        assert "fork server" in (directory / "log.txt").read_text()
