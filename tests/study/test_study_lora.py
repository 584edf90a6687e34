"""A seed study comparing LoRA with full fine-tuning on the same seeds, from command to summary: 2 recipes
× 2 seeds of a tiny random BERT on a subset of the real RTE, run in process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from transformers_fine_tuning.study import StudyStore, load_spec
from transformers_fine_tuning.study.cli import main

pytest.importorskip("peft")


def test_lora_against_full_fine_tuning_on_the_same_seeds(write_study, capsys):
    path = write_study("lora-vs-full", recipes=["devlin2019", "lora"], seeds="0-1")
    assert main(["run", str(path), "--in-process"]) == 0
    assert "[lora-vs-full] 4/4 runs done" in capsys.readouterr().out

    spec = load_spec(path)
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    assert sorted((run.recipe, run.seed, run.status) for run in runs) == [
        ("devlin2019", 0, "completed"),
        ("devlin2019", 1, "completed"),
        ("lora", 0, "completed"),
        ("lora", 1, "completed"),
    ]
    for run in runs:
        results = json.loads((Path(run.output_dir) / "results.json").read_text())
        fine_tuning = results["arguments"]["fine_tuning"]
        assert fine_tuning["lora_r"] == (8 if run.recipe == "lora" else 0)
        assert results["seed"] == results["data_seed"] == run.seed
    rows = list(csv.DictReader((spec.output_dir / "summary.csv").open()))
    assert [(row["recipe"], row["n"]) for row in rows] == [("devlin2019", "2"), ("lora", "2")]
    markdown = (spec.output_dir / "summary.md").read_text()
    # the table has both recipes, and LoRA is tested against full fine-tuning
    assert "\n| devlin2019 (baseline)" in markdown and "\n| lora " in markdown
    assert "\n| lora |" in markdown.split("| vs devlin2019 |", 1)[1]
