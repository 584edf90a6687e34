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
        log = (spec.output_dir / "workers" / f"worker-{slot}.log").read_text()
        assert "no pending run left" in log and "RuntimeWarning" not in log
    for run in runs:
        results = json.loads((Path(run.output_dir) / "results.json").read_text())
        # each worker got its slice of the machine: half of the cores each (OMP_NUM_THREADS)
        assert results["device"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)


def test_ray_backend_on_a_local_instance(write_study, capsys, monkeypatch):
    """No --address: the study starts its own local instance (2 CPUs here), even while another Ray cluster runs
    on the machine (Ray's own default would join that one, and refuse num_cpus for it)."""
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = load_spec(write_study("ray", recipes=["devlin2019", "l2sp"], seeds=[0]))
    options = ExecutionOptions(backend="ray", isolation="in-process", ray_num_cpus=2, poll_interval_s=0.2)
    started_init, seen_cpus = ray.init, []

    def init_and_look(**kwargs):
        context = started_init(**kwargs)
        seen_cpus.append(ray.cluster_resources()["CPU"])
        return context

    monkeypatch.setattr(ray, "init", init_and_look)
    stray = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    try:
        counts = run_study(spec, options)
    finally:
        stray.shutdown()
    assert seen_cpus == [2]  # its own instance, not the stray one-CPU cluster
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


def test_a_node_lost_mid_study_on_a_three_node_ray_cluster(write_study):
    """A simulated cluster of three nodes on this machine (ray.cluster_utils.Cluster); a worker node is removed
    while it runs a study run (three runs in flight on three one-CPU nodes: one on each). Ray re-executes the task elsewhere, the driver alone records outcomes: every run
    ends completed, claimed once by the driver, and the store stays consistent."""
    import sqlite3
    import threading
    import time

    import ray
    from ray.cluster_utils import Cluster

    spec = load_spec(write_study("nodes", recipes=["devlin2019", "l2sp"], seeds="0-1"))  # 4 runs
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    errors: list[BaseException] = []
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        options = ExecutionOptions(backend="ray", isolation="in-process", poll_interval_s=0.2, max_retries=3)

        def drive() -> None:
            try:
                run_study(spec, options, report=False)
            except BaseException as error:
                errors.append(error)

        driver = threading.Thread(target=drive)
        driver.start()
        # three runs in flight, one per node (each node has one CPU, each run asks for one), all started
        deadline = time.monotonic() + 600

        def started() -> int:
            with StudyStore(spec.store_path) as store:
                running = store.runs("running")
            return sum((Path(run.output_dir) / "study-run.json").is_file() for run in running)

        while not spec.store_path.exists() or started() < 3:
            assert driver.is_alive() and time.monotonic() < deadline, errors or "three runs never ran at once"
            time.sleep(0.1)
        cluster.remove_node(doomed)  # the node goes, with the run it was running
        driver.join(timeout=900)
        assert not driver.is_alive() and not errors, errors
    finally:
        ray.shutdown()
        cluster.shutdown()
    with StudyStore(spec.store_path) as store:
        runs = store.runs()
    assert len(runs) == 4 and all(run.status == "completed" for run in runs), [
        (r.run_id, r.status) for r in runs
    ]
    assert all(run.attempts == 1 and run.owner.split(":")[2].startswith("ray-driver") for run in runs)
    for run in runs:
        assert json.loads((Path(run.output_dir) / "results.json").read_text())["seed"] == run.seed
    connection = sqlite3.connect(spec.store_path)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert connection.execute("SELECT COUNT(*) FROM runs").fetchone() == (4,)
    connection.close()
