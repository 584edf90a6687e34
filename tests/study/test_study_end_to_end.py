"""A tiny study from command to table to picture: 2 recipes × 3 seeds of a tiny BERT on a subset of the real
RTE; re-running skips finished runs; a run that raises is recorded as an error and the others go on; the
default subprocess isolation runs ``fine-tune.py`` itself; the commands status, summary and plot."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
from matplotlib import image

from transformers_fine_tuning.results import MainMetric, RunResults, write_results
from transformers_fine_tuning.study import StudyStore, execute_run, load_spec
from transformers_fine_tuning.study.cli import main
from transformers_fine_tuning.study.run.runner import finished_results


def test_tiny_study_from_command_to_table_and_plots(write_study, capsys):
    path = write_study()
    assert main(["run", str(path), "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "6 runs in the study, 0 already completed; 6 new" in out
    assert "[tiny] 3/6 runs done" in out and "[tiny] 6/6 runs done" in out  # the progress line

    spec = load_spec(path)
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
        assert store.counts().completed == 6
    assert sorted(run.run_id for run in runs) == sorted(cell.run_id for cell in spec.cells())
    for run in runs:
        results = json.loads((Path(run.output_dir) / "results.json").read_text())
        assert (results["seed"], results["data_seed"], results["recipe"]) == (run.seed, run.seed, run.recipe)
        assert run.main_metric == results["main_metric"]["value"] and run.failed_run == results["failed"]
        assert results["num_examples"] == {"train": 16, "validation": 32}
        assert run.constant_baseline == results["constant_baseline"]["validation"]["accuracy"]
        assert [entry.step for entry in run.evaluations] == [1, 2]  # evaluated after each of the 2 steps
        assert run.host and run.wall_time_s > 0 and run.attempts == 1
    # the recipe's arguments reached the run: Mosbach's bias correction, Devlin's uncorrected Adam
    mosbach = json.loads((Path(runs[1].output_dir) / "results.json").read_text())
    assert runs[1].recipe == "mosbach2021" and mosbach["arguments"]["fine_tuning"]["bias_correction"] is True
    assert (
        mosbach["arguments"]["training"]["num_train_epochs"] == 1
    )  # the study's value beats the recipe's 20

    rows = list(csv.DictReader((spec.output_dir / "summary.csv").open()))
    assert [(row["task"], row["recipe"], row["n"]) for row in rows] == [
        ("rte", "devlin2019", "3"),
        ("rte", "mosbach2021", "3"),
    ]
    for row in rows:
        chosen = [run for run in runs if run.recipe == row["recipe"]]
        assert int(row["failed_runs"]) == sum(run.failed_run for run in chosen)
        assert float(row["mean"]) == pytest.approx(sum(run.main_metric for run in chosen) / 3)
    markdown = (spec.output_dir / "summary.md").read_text()
    assert "# Seed study `tiny`" in markdown and "**Verdict, rte:**" in markdown
    assert re.search(r"\| devlin2019 \(baseline\)( ⚠)? \| 3 \|", markdown)  # ⚠ when (almost) all failed
    assert "![final metric of every run](plots/rte-final.png)" in markdown
    # where the time went: every run's timings, within the wall time the runner measured around it
    assert "## Where the time went" in markdown and "| training |" in markdown
    for run in runs:
        assert 0 < run.timings["training_s"] < run.timings["total_s"] <= run.wall_time_s
    for name in ("rte-final.png", "rte-curves.png"):
        picture = spec.output_dir / "plots" / name
        assert picture.stat().st_size > 15_000 and image.imread(picture).shape[0] > 400

    # the same command again: nothing left to run, nothing re-run
    stamps = {run.run_id: (Path(run.output_dir) / "results.json").stat().st_mtime_ns for run in runs}
    assert main(["run", str(path), "--in-process"]) == 0
    assert "6 already completed; 0 new, 0 found crashed, 0 re-queued; 0 to run" in capsys.readouterr().out
    assert stamps == {run.run_id: (Path(run.output_dir) / "results.json").stat().st_mtime_ns for run in runs}

    # status, summary against another baseline, plot
    assert main(["status", str(spec.output_dir)]) == 0
    status = capsys.readouterr().out
    assert "[tiny] 6/6 runs done" in status and "mosbach2021" in status
    assert main(["summary", str(path), "--baseline", "mosbach2021", "--resamples", "999"]) == 0
    assert re.search(
        r"\| mosbach2021 \(baseline\)( ⚠)? \| 3 \|", (spec.output_dir / "summary.md").read_text()
    )
    assert main(["summary", str(path), "--baseline", "nope"]) == 2
    assert "baseline recipe 'nope' is not in the study" in capsys.readouterr().err
    # the best evaluation of each run instead of its final one (here chosen on dev itself: the summary says so)
    assert main(["summary", str(path), "--score", "best", "--resamples", "999"]) == 0
    best_md = (spec.output_dir / "summary.md").read_text()
    assert "best evaluation during training" in best_md and "optimistic" in best_md
    best_rows = {row["recipe"]: row for row in csv.DictReader((spec.output_dir / "summary.csv").open())}
    for recipe, row in best_rows.items():
        chosen = [run for run in runs if run.recipe == recipe]
        best = [
            max(e.metrics["accuracy"] for e in run.evaluations if e.split == "validation") for run in chosen
        ]
        assert float(row["mean"]) == pytest.approx(sum(best) / len(best))
    (spec.output_dir / "plots" / "rte-final.png").unlink()
    assert main(["plot", str(spec.store_path)]) == 0
    assert (spec.output_dir / "plots" / "rte-final.png").is_file()


def test_a_run_that_raises_is_an_error_and_the_others_go_on(write_study, tmp_path, capsys):
    path = write_study(
        "broken",
        tasks=[
            "rte",
            {"name": "rte-missing", "task_name": "rte", "arguments": {"data_dir": str(tmp_path / "none")}},
        ],
        recipes=["llrd"],
        seeds=[0],
    )
    assert main(["run", str(path), "--in-process", "--max-attempts", "2"]) == 1  # runs ended in an error
    captured = capsys.readouterr()
    assert "rte-missing/llrd/seed0-data0: error" in captured.out
    assert "1 run(s) ended in an error" in captured.err
    spec = load_spec(path)
    with StudyStore(spec.store_path) as store:
        runs = {run.run_id: run for run in store.runs()}
    assert runs["rte/llrd/seed0-data0"].status == "completed"
    broken = runs["rte-missing/llrd/seed0-data0"]
    assert broken.status == "error" and broken.failed_run is None  # an error is not a "failed run"
    assert f"data_dir {tmp_path / 'none'} is not a directory" in broken.error
    rows = list(csv.DictReader((spec.output_dir / "summary.csv").open()))
    assert [(row["task"], row["n"], row["errors"]) for row in rows] == [
        ("rte", "1", "0"),
        ("rte-missing", "0", "1"),
    ]
    # a second invocation tries the errored run again, up to --max-attempts attempts in all
    assert main(["run", str(path), "--in-process", "--max-attempts", "2"]) == 1
    assert "1 re-queued" in capsys.readouterr().out
    assert main(["run", str(path), "--in-process", "--max-attempts", "2"]) == 1
    assert "0 re-queued; 0 to run" in capsys.readouterr().out
    with StudyStore(spec.store_path) as store:
        assert {run.run_id: run.attempts for run in store.runs()}["rte-missing/llrd/seed0-data0"] == 2


def test_bad_study_arguments_stop_before_any_run(write_study, capsys):
    path = write_study("bad", arguments={"not_a_flag": 1})
    assert main(["run", str(path), "--in-process"]) == 2
    assert "fine-tune rejects the arguments of rte/devlin2019/seed0-data0" in capsys.readouterr().err
    assert not (load_spec(path).output_dir / "study.sqlite").exists()
    assert main(["run", str(path), "--seeds", "3-1"]) == 2
    assert "ends before it starts" in capsys.readouterr().err


def test_subprocess_isolation_runs_the_package_job_and_keeps_its_log(write_study):
    cell = load_spec(write_study("isolated", recipes=["l2sp"], seeds=[4])).cells()[0]
    outcome = execute_run(cell, isolation="subprocess")
    assert outcome.status == "completed", outcome.error
    assert outcome.results.seed == 4 and outcome.results.recipe == "l2sp"
    log = Path(cell.output_dir) / "log.txt"
    command, text = log.read_text().split("\n", 1)
    assert command.startswith(f"{sys.executable} -m transformers_fine_tuning.fine_tune --recipe l2sp ")
    assert "python -m transformers_fine_tuning.fine_tune: accuracy" in text
    # killed after writing results.json but before the store heard of it: the results are taken, not re-run
    stamp = log.stat().st_mtime_ns
    again = execute_run(cell, isolation="subprocess")
    assert again.status == "completed" and again.results == outcome.results and again.wall_time_s < 1
    assert log.stat().st_mtime_ns == stamp


def test_only_results_of_the_same_configuration_are_taken(write_study):
    cell = load_spec(write_study("recover", recipes=["llrd"], seeds=[0])).cells()[0]
    directory = Path(cell.output_dir)
    results = RunResults(
        status="completed", task="rte", model="m", seed=0, data_seed=0,
        main_metric=MainMetric("accuracy", "validation", 0.6), failed=False,
        metrics={"validation": {"accuracy": 0.6}}, constant_baseline={"validation": {"accuracy": 0.5}},
        global_step=2,
    )  # fmt: skip
    write_results(directory / "results.json", results)
    (directory / "study-run.json").write_text(json.dumps({"config_hash": "another configuration"}))
    assert finished_results(cell) is None
    (directory / "study-run.json").write_text(json.dumps({"config_hash": cell.config_hash}))
    assert finished_results(cell) == results
    (directory / "results.json").write_text('{"seed": 0}')  # not a results file: run again
    assert finished_results(cell) is None
