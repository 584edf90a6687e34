"""The result store: statuses, atomic claims under concurrent worker processes, dead workers reclaimed,
changed configurations refused, nothing recorded twice."""

from __future__ import annotations

import inspect
import json
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from transformers_fine_tuning.results import FAILED_DEFINITION, Evaluation, MainMetric, RunResults
from transformers_fine_tuning.study import Owner, StudyConfigChangedError, StudyStore, spec_from_mapping


def fake_results(value: float, failed: bool = False, *, model: str = "tiny") -> RunResults:
    """Results of a run with ``value`` as its final accuracy (``model`` tells who wrote them)."""
    return RunResults(
        status="completed",
        task="rte",
        model=model,
        seed=0,
        data_seed=0,
        main_metric=MainMetric("accuracy", "validation", value),
        failed=failed,
        metrics={"validation": {"accuracy": value}},
        constant_baseline={"validation": {"accuracy": 0.5}},
        global_step=1,
        evaluations=[Evaluation(1, 1.0, "validation", {"accuracy": value})],
        wall_time_s=1.5,
        device={"host": "elsewhere"},
    )


@pytest.fixture
def cells(tmp_path):
    spec = spec_from_mapping(
        {
            "output_dir": str(tmp_path / "s"),
            "tasks": ["rte"],
            "recipes": ["devlin2019", "llrd"],
            "seeds": "0-2",
        }
    )
    return spec.cells()


def test_life_of_runs(tmp_path, cells):
    with StudyStore(tmp_path / "study.sqlite") as store:
        assert store.sync(cells) == [cell.run_id for cell in cells]
        assert store.sync(cells) == []  # idempotent
        owner = Owner.current("test")
        first = store.claim(owner)
        assert first == cells[0]  # in the grid's order, with the whole cell
        second = store.claim(owner)
        assert store.counts().running == 2 and store.counts().pending == 4
        assert store.record_completed(first.run_id, fake_results(0.7), wall_time_s=2.0)
        assert not store.record_completed(first.run_id, fake_results(0.1))  # recorded once, never replaced
        store.record_error(second.run_id, "Traceback ...\nValueError: boom")
        counts = store.counts()
        assert (counts.completed, counts.error, counts.pending, counts.total, counts.done) == (1, 1, 4, 6, 2)
        record = {run.run_id: run for run in store.runs()}[first.run_id]
        assert (record.main_metric, record.constant_baseline, record.failed_run) == (0.7, 0.5, False)
        assert record.wall_time_s == 2.0 and record.host == "elsewhere" and record.attempts == 1
        assert record.evaluations == [Evaluation(1, 1.0, "validation", {"accuracy": 0.7})]
        assert record.resumed_from_step is None
        assert store.results(first.run_id) == fake_results(0.7)
        errored = store.runs("error")[0]
        assert errored.run_id == second.run_id and errored.error.endswith("ValueError: boom")
        # a new invocation re-queues the errored run while it has attempts left
        assert store.requeue(max_attempts=1) == []
        assert store.requeue(max_attempts=2) == [second.run_id]
        assert store.claim(owner).run_id == second.run_id
        assert store.runs("running")[0].attempts == 2


def test_release_gives_the_claim_back(tmp_path, cells):
    with StudyStore(tmp_path / "study.sqlite") as store:
        store.sync(cells)
        owner = Owner.current()
        cell = store.claim(owner)
        store.release(cell.run_id, Owner.current())  # not the owner: nothing happens
        assert store.counts().running == 1
        store.release(cell.run_id, owner)
        run = store.runs()[0]
        assert run.status == "pending" and run.attempts == 0


def test_dead_and_silent_workers_are_reclaimed(tmp_path, cells):
    path = tmp_path / "study.sqlite"
    with StudyStore(path) as store:
        store.sync(cells)
    # a worker on this host that claimed a run and died without recording it
    finished = subprocess.Popen(["true"])
    finished.wait()
    with StudyStore(path) as store:
        doomed = store.claim(Owner(platform.node(), finished.pid, "doomed")).run_id
    with StudyStore(path) as store:
        alive = Owner.current("alive")
        mine = store.claim(alive)
        assert store.reclaim_dead() == [doomed]  # its process is gone; ours is alive and fresh
        crashed = {run.run_id: run for run in store.runs()}[doomed]
        assert crashed.status == "crashed" and "stopped while running it" in crashed.error
        # a live owner whose heartbeat is stale (another host, or hung) is reclaimed too
        time.sleep(0.05)
        assert store.reclaim_dead(stale_after_s=0.01) == [mine.run_id]
        assert store.requeue(max_attempts=3) == [cells[0].run_id, mine.run_id]


def test_heartbeat_keeps_a_claim_fresh(tmp_path, cells):
    with StudyStore(tmp_path / "study.sqlite") as store:
        store.sync(cells)
        owner = Owner.current()
        cell = store.claim(owner)
        time.sleep(0.2)
        store.heartbeat([cell.run_id], owner)
        assert store.reclaim_dead(stale_after_s=0.15) == []


def test_changed_configuration_of_completed_runs_is_refused(tmp_path, cells):
    changed = spec_from_mapping(
        {
            "output_dir": str(tmp_path / "s"),
            "tasks": ["rte"],
            "recipes": ["devlin2019", "llrd"],
            "seeds": "0-3",  # one seed more ...
            "arguments": {"learning_rate": 1e-5},  # ... and another learning rate
        }
    ).cells()
    with StudyStore(tmp_path / "study.sqlite") as store:
        store.sync(cells)
        owner = Owner.current()
        done = store.claim(owner)
        store.record_completed(done.run_id, fake_results(0.6))
        with pytest.raises(StudyConfigChangedError, match="--rerun-changed"):
            store.sync(changed)
        assert store.counts().total == 6  # the refused sync changed nothing
        added = store.sync(changed, rerun_changed=True)
        assert sorted(added) == ["rte/devlin2019/seed3-data3", "rte/llrd/seed3-data3"]
        rerun = {run.run_id: run for run in store.runs()}[done.run_id]
        assert rerun.status == "pending" and rerun.main_metric is None and "--learning_rate" in rerun.argv


def claim_all(store: StudyStore, name: str) -> list[str]:
    """A worker's loop: claim until nothing is left, record each run as completed by ``name``."""
    import random
    import time

    from transformers_fine_tuning.study import Owner

    owner, claimed = Owner.current(name), []
    while (cell := store.claim(owner)) is not None:
        claimed.append(cell.run_id)
        time.sleep(random.uniform(0, 0.004))  # a run takes time: let the others interleave
        store.record_completed(cell.run_id, fake_results(0.5, model=name))
    return claimed


# A worker process: claim_all's source, run once every worker has imported (imports take seconds).
WORKER = (
    "import json, pathlib, sys, time\n"
    "from transformers_fine_tuning.results import Evaluation, MainMetric, RunResults\n"
    "from transformers_fine_tuning.study import StudyStore\n"
    + inspect.getsource(fake_results)
    + inspect.getsource(claim_all)
    + """
store, name, barrier = StudyStore(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
(barrier / f"ready-{name}").touch()
while not (barrier / "go").exists():
    time.sleep(0.01)
print(json.dumps(claim_all(store, name)))
"""
)


def test_concurrent_workers_never_share_a_run(tmp_path, wait_until):
    spec = spec_from_mapping(
        {
            "output_dir": str(tmp_path / "s"),
            "tasks": ["rte"],
            "recipes": ["devlin2019", "llrd", "l2sp"],
            "seeds": "0-29",
        }
    )
    cells = spec.cells()
    path = tmp_path / "study.sqlite"
    with StudyStore(path) as store:
        store.sync(cells)
    # two worker processes and this one claim from the same store at the same time
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), f"w{i}", str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]

    def ready() -> bool:
        assert all(worker.poll() is None for worker in workers), "a worker process died"
        return all((tmp_path / f"ready-w{i}").exists() for i in (1, 2))

    wait_until(ready, 300, "the workers to start")
    (tmp_path / "go").touch()
    with StudyStore(path) as store:
        claimed = [claim_all(store, "w0")]
    claimed += [json.loads(worker.communicate(timeout=300)[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    every = [run_id for worker in claimed for run_id in worker]
    assert sorted(every) == sorted(cell.run_id for cell in cells)  # each run claimed exactly once
    assert sum(1 for worker in claimed if worker) >= 2, [
        len(worker) for worker in claimed
    ]  # they did overlap
    with StudyStore(path) as store:
        runs = store.runs()
        assert store.counts().completed == len(cells) == 90
        for index, run_ids in enumerate(claimed):  # each run's results come from the worker that claimed it
            for run_id in run_ids:
                assert store.results(run_id).model == f"w{index}"
    assert all(run.attempts == 1 for run in runs)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_runs_dropped_from_the_study_are_kept_but_inactive(tmp_path, cells):
    fewer = spec_from_mapping(
        {
            "output_dir": str(tmp_path / "s"),
            "tasks": ["rte"],
            "recipes": ["devlin2019", "llrd"],
            "seeds": "0-1",
        }
    ).cells()
    with StudyStore(tmp_path / "study.sqlite") as store:
        store.sync(cells)
        owner = Owner.current()
        last = cells[-1]  # rte/llrd/seed2-data2
        store.sync([last])  # only this one is a cell of the study now
        assert store.claim(owner) == last
        store.record_completed(last.run_id, fake_results(0.8))
        assert store.sync(fewer) == []  # seed 2 dropped: nothing added, nothing deleted
        assert store.counts().total == 4 and store.counts().completed == 0
        assert len(store.runs()) == 4 and len(store.runs(include_inactive=True)) == 6
        claimed = [store.claim(owner).run_id for _ in range(4)]
        assert store.claim(owner) is None and all("seed2" not in run_id for run_id in claimed)
        store.sync(cells)  # seed 2 back: its completed run counts again, with its results
        assert store.counts().completed == 1 and store.counts().pending == 1
        assert {run.run_id: run.main_metric for run in store.runs("completed")} == {last.run_id: 0.8}


def test_a_version_1_store_is_upgraded_in_place(tmp_path, cells):
    """A store written before the results schema (evaluations as the Trainer logged them, no resumed_from_step):
    opened by this version, its rows read as typed evaluations, nothing lost."""
    path = tmp_path / "study.sqlite"
    with StudyStore(path) as store:
        store.sync(cells[:1])
        store.claim(Owner.current())
        store.record_completed(cells[0].run_id, fake_results(0.7))
    version_1 = fake_results(0.7).to_dict()
    version_1.update(
        schema_version=1, evaluations=[{"step": 1, "epoch": 1.0, "eval_validation_accuracy": 0.7}]
    )
    del version_1["resumed_from"]
    version_1["majority_baseline"] = version_1.pop("constant_baseline")
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("ALTER TABLE runs DROP COLUMN resumed_from_step")
        connection.execute(
            "UPDATE runs SET evaluations_json = ?, results_json = ?",
            (json.dumps(version_1["evaluations"]), json.dumps(version_1)),
        )
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    connection.close()

    with StudyStore(path) as store:
        [run] = store.runs("completed")
        assert run.evaluations == [Evaluation(1, 1.0, "validation", {"accuracy": 0.7})]
        assert run.resumed_from_step is None and run.main_metric == 0.7
        # judged again by today's definition (0.7 above the constant's 0.5: not failed), nothing else changed
        upgraded = store.results(run.run_id)
        assert (
            upgraded.failure is not None
            and upgraded.failure.rule is None
            and upgraded.failure.baseline == 0.5
        )
        assert upgraded == replace(
            fake_results(0.7), failure=upgraded.failure, failed_definition=FAILED_DEFINITION
        )
        assert run.failed_run is False and run.constant_baseline == 0.5 and run.failure_rule is None
        assert store.get_meta("schema_version") == 3


def test_a_store_of_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "study.sqlite"
    StudyStore(path).close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    connection.close()
    with pytest.raises(ValueError, match=r"study store of version 7; .* reads versions up to 3"):
        StudyStore(path)
