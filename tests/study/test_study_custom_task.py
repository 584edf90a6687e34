"""A tiny study of tasks of your own data — a 3-class CSV and a regression JSON-lines file — from the study file
to its table and plots, next to the study's GLUE data directory that their own data replaces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from transformers_fine_tuning.study import StudyStore, load_spec
from transformers_fine_tuning.study.cli import main

SENTIMENT = Path(__file__).parents[1] / "data" / "sentiment"


def test_a_study_of_your_own_data_runs_to_its_summary(write_study, tmp_path, capsys):
    for name, offset in (("train", 0), ("dev", 7)):
        rows = [
            {"text": f"{'good ' * (k % 4)}item {k}", "score": float(k % 4)}
            for k in range(offset, offset + 32)
        ]
        (tmp_path / f"scores-{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = write_study(
        "own",
        tasks=[
            {
                "name": "sentiment",
                "arguments": {
                    "train_file": str(SENTIMENT / "train.csv"),
                    "validation_file": str(SENTIMENT / "validation.csv"),
                    "text_column": "text",
                    "label_column": "label",
                },
            },
            {
                "name": "scores",
                "task_name": "review-scores",
                "arguments": {
                    "train_file": str(tmp_path / "scores-train.jsonl"),
                    "validation_file": str(tmp_path / "scores-dev.jsonl"),
                    "label_column": "score",
                },
            },
        ],
        recipes=["devlin2019", "llrd"],
        seeds="0-1",
    )  # the study's arguments keep write_study's GLUE data_dir: each task's own files replace it
    spec = load_spec(path)
    sentiment_argv = next(cell.argv for cell in spec.cells() if cell.task == "sentiment")
    assert "--data_dir" not in sentiment_argv and "--train_file" in sentiment_argv
    assert sentiment_argv[sentiment_argv.index("--task_name") + 1] == "sentiment"

    assert main(["run", str(path), "--in-process"]) == 0
    assert "[own] 8/8 runs done" in capsys.readouterr().out
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    assert len(runs) == 8 and all(run.status == "completed" for run in runs)
    for run in runs:
        results = json.loads((Path(run.output_dir) / "results.json").read_text())
        assert results["task_info"]["kind"] == "custom"
        assert results["task"] == {"sentiment": "sentiment", "scores": "review-scores"}[run.task]
        expected = ("accuracy", "validation") if run.task == "sentiment" else ("pearson", "validation")
        assert (run.main_metric_name, run.main_metric_split) == expected
        assert run.constant_baseline == results["constant_baseline"]["validation"][expected[0]]
    # the first 32 dev rows hold 10 negative, 12 neutral, 10 positive: the best constant answers neutral (the
    # first 16 training rows' majority, negative, would score 10/32)
    assert [run.constant_baseline for run in runs if run.task == "sentiment"] == [pytest.approx(12 / 32)] * 4
    assert [run.constant_baseline for run in runs if run.task == "scores"] == [0.0] * 4

    rows = list(csv.DictReader((spec.output_dir / "summary.csv").open()))
    assert [(row["task"], row["recipe"], row["n"]) for row in rows] == [
        ("sentiment", "devlin2019", "2"),
        ("sentiment", "llrd", "2"),
        ("scores", "devlin2019", "2"),
        ("scores", "llrd", "2"),
    ]
    for row in rows:
        chosen = [run for run in runs if (run.task, run.recipe) == (row["task"], row["recipe"])]
        assert float(row["mean"]) == pytest.approx(sum(run.main_metric for run in chosen) / 2)
        assert int(row["failed_runs"]) == sum(run.failed_run for run in chosen)
        assert row["churn"] != ""  # class disagreement for sentiment, mean absolute difference for scores
    markdown = (spec.output_dir / "summary.md").read_text()
    assert "## sentiment: accuracy on validation (best constant predictor 0.3750)" in markdown
    assert "## scores: pearson on validation (best constant predictor 0.0000)" in markdown
    for name in ("sentiment-final.png", "sentiment-curves.png", "scores-final.png", "scores-curves.png"):
        assert (spec.output_dir / "plots" / name).stat().st_size > 10_000
