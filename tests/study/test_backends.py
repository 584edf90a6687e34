"""The parallel backends on this machine: N local worker processes sharing the store, and Ray remote tasks on
a local Ray instance (started with 2 CPUs and no dashboard)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers_fine_tuning.study import ExecutionOptions, StudyStore, load_spec, run_study


def test_local_workers_share_the_study(write_study, capsys):
    spec = load_spec(write_study("local", recipes=["llrd"], seeds="0-3"))
    counts = run_study(
        spec, ExecutionOptions(backend="local", workers=2, isolation="in-process", poll_interval_s=0.2)
    )
    assert counts.completed == 4 and counts.total == 4
    assert "on the local backend" in capsys.readouterr().out
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    assert all(run.status == "completed" and run.attempts == 1 for run in runs)
    owners = {run.owner.split(":")[2].split("-")[0] for run in runs}  # worker0 / worker1
    assert owners <= {"worker0", "worker1"}
    for slot in (0, 1):
        assert (spec.output_dir / "workers" / f"worker-{slot}.log").is_file()
    for run in runs:
        results = json.loads((Path(run.output_dir) / "results.json").read_text())
        # each worker got its slice of the machine: half of the cores each (OMP_NUM_THREADS)
        assert results["device"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)


def test_ray_backend_on_a_local_instance(write_study, capsys):
    import ray

    spec = load_spec(write_study("ray", recipes=["devlin2019", "l2sp"], seeds=[0]))
    options = ExecutionOptions(backend="ray", isolation="in-process", ray_num_cpus=2, poll_interval_s=0.2)
    counts = run_study(spec, options)
    assert counts.completed == 2 and counts.error == 0
    assert "on the ray backend" in capsys.readouterr().out
    assert not ray.is_initialized()  # the instance it started is shut down again
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    assert [(run.recipe, run.status, run.attempts) for run in runs] == [
        ("devlin2019", "completed", 1),
        ("l2sp", "completed", 1),
    ]
    assert all(run.owner.split(":")[2].startswith("ray-driver") for run in runs)  # claimed by the driver
    for run in runs:  # each ran in a Ray worker holding the 1 CPU the task asked for
        assert json.loads((Path(run.output_dir) / "results.json").read_text())["device"]["threads"] == 1
    assert (spec.output_dir / "summary.csv").is_file() and (
        spec.output_dir / "plots" / "rte-final.png"
    ).is_file()
