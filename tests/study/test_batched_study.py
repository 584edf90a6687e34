"""A study that trains its seeds batched (``--batch-seeds``), and runs singly the recipes it cannot batch."""

from __future__ import annotations

import json
from pathlib import Path

from transformers_fine_tuning.study import ExecutionOptions, StudyStore, load_spec, run_study


def test_a_study_batches_its_seeds_and_runs_singly_what_it_cannot(write_study):
    """``batch_seeds=2``: devlin2019's four seeds train two by two; mixout's cannot, so they run singly, and
    their logs say why. Every run completes and is recorded as any other."""
    spec = load_spec(write_study("batched", recipes=["devlin2019", "mixout"], seeds="0-3"))
    counts = run_study(spec, ExecutionOptions(batch_seeds=2, poll_interval_s=0.2))
    assert counts.completed == 8 and counts.total == 8
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    for record in runs:
        results = _results(record.output_dir)
        log = (Path(record.output_dir) / "log.txt").read_text()
        if record.recipe == "devlin2019":
            assert len(results["effective"]["batched_seeds"]) == 2
        else:
            assert "batched_seeds" not in results["effective"]
            assert "cannot be trained batched" in log or "each runs singly" in log


def _results(directory: str | Path) -> dict:
    return json.loads((Path(directory) / "results.json").read_text())
