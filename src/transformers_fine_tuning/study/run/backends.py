"""Where a study's runs execute: sequentially here, in N local worker processes, or on a Ray cluster.

All three take runs from the same store and write outcomes back to it, so they can be mixed across
invocations (start with ``local``, resume on a cluster with ``ray``) and a study resumes the same way
whichever backend was interrupted.

* ``sequential`` — the worker loop in this process, one run after another. The default.
* ``local`` — N worker processes on this machine, each claiming runs from the store (SQLite's locking keeps
  them from taking the same run). On a GPU machine worker *i* sees one GPU (``CUDA_VISIBLE_DEVICES``), by
  default one worker per GPU (``--runs-per-gpu K``: K at once on each, as many as a first run's measured
  peak memory says fit); on CPU each worker gets its own slice of the cores (CPU affinity and
  ``OMP_NUM_THREADS``), and runs on CPU start with fixed glibc malloc thresholds (:mod:`.environment`). A
  worker that dies (out of memory, killed) has its run marked crashed and re-queued,
  and a fresh worker takes its slot.
* ``ray`` — Ray remote tasks: Ray places each run on a node with the resources it asks for (``--cpus-per-run``,
  ``--gpus-per-run``) and re-executes a task whose worker or node dies (``max_retries``). Only the driver (this
  process) touches the store, so the SQLite file never has to live on shared storage. ``address=None`` starts
  a local Ray instance; ``--address auto`` or ``ray://host:10001`` joins a running cluster, whose nodes must
  have this package installed and see the data and model paths of the study.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .environment import (
    compile_cache_environment,
    cpu_run_environment,
    die_with_parent,
    visible_gpus,
)
from .execution import BACKENDS, ExecutionOptions
from .progress import Progress
from .runner import INTERRUPT_GRACE_S, RunOutcome, execute_run
from .spec import RunCell
from .store import COMPLETED, CRASHED, ERROR, Owner, StudyStore
from .worker import record_outcome, work_loop

__all__ = [
    "BACKENDS",
    "ExecutionOptions",
    "local_slot_environments",
    "run_local",
    "run_ray",
    "run_sequential",
    "visible_gpus",
]

# Environment variables a remote Ray worker needs to behave like this machine (offline mode, caches).
_FORWARDED_PREFIXES = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "TFT_")


# -- sequential -------------------------------------------------------------------------------------------


def run_sequential(store_path: str | Path, options: ExecutionOptions, progress: Progress) -> None:
    """Execute every pending run in this process, one after the other."""
    with StudyStore(store_path) as store:

        def report(outcome: RunOutcome) -> None:
            if outcome.status != "completed":
                print(f"[{progress.name}] {outcome.run_id}: {outcome.status}: {_last_line(outcome.error)}")
            progress.update(store.counts())

        work_loop(
            store_path,
            isolation=options.isolation,
            script=options.script,
            env={
                **compile_cache_environment(store_path),
                **({} if visible_gpus() else cpu_run_environment(options.malloc_thresholds)),
            },
            owner=Owner.current("sequential"),
            on_outcome=report,
            heartbeat_interval_s=options.heartbeat_interval_s,
            tokenized_cache_dir=options.tokenized_cache_dir(store_path),
            batch_seeds=options.batch_seeds,
        )


def _last_line(text: str | None) -> str:
    """The last non-empty line of an error message (a traceback's exception, a log's last word)."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- local worker processes -------------------------------------------------------------------------------


def _cpus() -> list[int]:
    return (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )


def local_slot_environments(
    workers: int, gpus: list[str] | None = None, *, malloc_thresholds: bool = True
) -> list[dict[str, Any]]:
    """Per worker: its environment variables and its CPU cores.

    GPU workers get one GPU each (round robin when there are more workers than GPUs). Every worker gets an
    equal share of the cores: ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and, where the share is whole, CPU
    affinity to disjoint cores so that the workers do not fight over them. Without GPUs, the runs also get
    :func:`.environment.cpu_run_environment`.
    """
    gpus = visible_gpus() if gpus is None else gpus
    cpus = _cpus()
    share = max(1, len(cpus) // workers)
    slots = []
    for slot in range(workers):
        env = {"OMP_NUM_THREADS": str(share), "MKL_NUM_THREADS": str(share)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        else:
            env.update(cpu_run_environment(malloc_thresholds))
        cores = cpus[slot * share : (slot + 1) * share] if share * workers <= len(cpus) else None
        slots.append({"env": env, "cpus": cores})
    return slots


_WORKER_ENTRY = (
    "import sys; from transformers_fine_tuning.study.run.worker import main; sys.exit(main(sys.argv[1:]))"
)
"""How a local worker process starts: not ``python -m ….study.run.worker``, since the package's ``__init__`` imports
that module before runpy executes it, and runpy warns about it in every worker's log."""

CUDA_CONTEXT_GIB = 0.6
"""GPU memory a process holds beyond the caching allocator's peak (the CUDA context, its kernels), per run."""


def measured_gpu_memory(devices: Iterable[Mapping[str, Any]]) -> tuple[float, float] | None:
    """The largest peak and the smallest GPU memory (GiB) among ``devices``, the completed runs'
    ``results.json`` ``device`` sections; ``None`` while none of them is a GPU run that recorded its memory."""
    measured = [device for device in devices if device.get("peak_memory_gib") and device.get("memory_gib")]
    if not measured:
        return None
    return max(device["peak_memory_gib"] for device in measured), min(
        device["memory_gib"] for device in measured
    )


def runs_per_gpu_that_fit(wanted: int, devices: Iterable[Mapping[str, Any]]) -> int | None:
    """How many runs at once fit on one GPU: ``wanted``, or fewer when the completed runs' largest peak
    (plus :data:`CUDA_CONTEXT_GIB` each) times that is more than 90 % of the smallest GPU's memory; at least 1.
    ``None`` while nothing is measured (:func:`measured_gpu_memory`).
    """
    memory = measured_gpu_memory(devices)
    if memory is None:
        return None
    peak, total = memory
    return max(1, min(wanted, int(0.9 * total // (peak + CUDA_CONTEXT_GIB))))


def _worker_preexec(cores: list[int] | None):  # pragma: no cover - runs in the child between fork and exec
    def preexec() -> None:
        die_with_parent()
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)

    return preexec


def run_local(store_path: str | Path, options: ExecutionOptions, progress: Progress) -> None:
    """Execute the pending runs in N worker processes on this machine; returns when none is left.

    Worker output goes to ``<study>/workers/worker-<slot>.log`` (with subprocess isolation each run also has
    its own ``log.txt``). A worker that exits abnormally has its run marked crashed, re-queued while it has
    attempts left, and is replaced; if workers keep dying without any run finishing, this stops and says so.
    """
    store_path = Path(store_path)
    gpus = visible_gpus()
    workers = _local_workers(options, gpus)
    # K per GPU: one worker per GPU (worker i runs on GPU i % len(gpus)) until a run has measured the memory
    fits = None if options.runs_per_gpu > 1 else options.runs_per_gpu
    active = workers if fits else len(gpus)
    progress.slots = workers
    slots = local_slot_environments(workers, gpus, malloc_thresholds=options.malloc_thresholds)
    log_dir = store_path.parent / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)

    def start(slot: int) -> subprocess.Popen:
        return _start_worker(store_path, options, slot, slots[slot], log_dir)

    processes: dict[int, subprocess.Popen] = {slot: start(slot) for slot in range(active)}
    abnormal_exits, last_done, last_completed = 0, None, None
    with StudyStore(store_path) as store:
        try:
            while True:
                time.sleep(options.poll_interval_s)
                crashed = _reap(processes)
                if crashed:
                    abnormal_exits += crashed
                    _requeue_crashed(store, options.max_attempts, progress.name)
                counts = store.counts()
                progress.update(counts)
                if counts.done != last_done:
                    abnormal_exits, last_done = 0, counts.done
                if fits is None and counts.completed != last_completed:
                    last_completed = counts.completed
                    fits = _measured_fit(store, options.runs_per_gpu, progress.name)
                    active = len(gpus) * (fits or 1)
                if counts.pending and abnormal_exits < 3 * workers:
                    # replace a worker that died, or one that finished before a run was re-queued; start the
                    # further workers of each GPU once a run has shown that they fit
                    for slot in set(range(active)) - set(processes):
                        processes[slot] = start(slot)
                if not processes:
                    if counts.pending:
                        raise RuntimeError(
                            f"local workers keep dying before finishing a run; see the logs in {log_dir}"
                        )
                    return
        except BaseException:
            _stop_workers(processes)
            store.reclaim_dead()
            raise


def _local_workers(options: ExecutionOptions, gpus: list[str]) -> int:
    """How many worker slots ``local`` has: ``workers``, else ``runs_per_gpu`` per GPU (1 on CPU, where
    ``runs_per_gpu`` above 1 is refused)."""
    if options.runs_per_gpu > 1 and not gpus:
        raise ValueError(
            f"--runs-per-gpu {options.runs_per_gpu}: this machine shows no GPU (CUDA_VISIBLE_DEVICES, "
            "torch.cuda); on CPU give --workers instead"
        )
    return options.workers or max(1, len(gpus)) * options.runs_per_gpu


def _start_worker(
    store_path: Path, options: ExecutionOptions, slot: int, environment: Mapping[str, Any], log_dir: Path
) -> subprocess.Popen:
    """Start the worker process of ``slot`` (its ``environment``: variables and cores), logging to
    ``<log_dir>/worker-<slot>.log``."""
    command = [
        sys.executable,
        "-c",
        _WORKER_ENTRY,
        str(store_path),
        "--isolation",
        options.isolation,
        "--slot",
        str(slot),
        "--heartbeat-interval",
        str(options.heartbeat_interval_s),
    ]
    if options.script:
        command += ["--script", str(options.script)]
    if (tokenized := options.tokenized_cache_dir(store_path)) is not None:
        command += ["--tokenized-cache-dir", str(tokenized)]
    if options.batch_seeds > 1:
        command += ["--batch-seeds", str(options.batch_seeds)]
    with open(log_dir / f"worker-{slot}.log", "a", encoding="utf-8") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **compile_cache_environment(store_path), **environment["env"]},
            preexec_fn=_worker_preexec(environment["cpus"]) if sys.platform.startswith("linux") else None,
        )


def _reap(processes: dict[int, subprocess.Popen]) -> int:
    """Drop the workers that exited from ``processes`` (by slot); returns how many exited abnormally."""
    abnormal = 0
    for slot, process in list(processes.items()):
        if process.poll() is not None:
            del processes[slot]
            if process.returncode != 0:
                abnormal += 1
    return abnormal


def _requeue_crashed(store: StudyStore, max_attempts: int, name: str) -> None:
    """After a worker died: its run marked crashed (said aloud) and re-queued while it has attempts left."""
    for run_id in store.reclaim_dead():
        print(f"[{name}] {run_id}: its worker died; re-queued if attempts are left")
    store.requeue(max_attempts=max_attempts, statuses=(CRASHED,))


def _stop_workers(processes: Mapping[int, subprocess.Popen]) -> None:
    """Stop the workers on an interruption: each gives its claim back, its run saving a checkpoint first."""
    for process in processes.values():
        process.send_signal(signal.SIGTERM)  # each worker gives its claim back and exits
    for process in processes.values():
        try:
            process.wait(timeout=INTERRUPT_GRACE_S + 60)  # each run gets its checkpoint first
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _measured_fit(store: StudyStore, wanted: int, name: str) -> int | None:
    """:func:`runs_per_gpu_that_fit` over the store's completed runs, said aloud once it is known."""
    devices = [results.device for run in store.runs(COMPLETED) if (results := store.results(run.run_id))]
    fits = runs_per_gpu_that_fit(wanted, devices)
    if fits is not None:
        peak, total = measured_gpu_memory(devices)
        print(
            f"[{name}] a run peaks at {peak:.1f} GiB of a GPU's {total:.1f} GiB: {fits} run(s) per GPU"
            + ("" if fits == wanted else f", not the {wanted} asked for (they would not fit)")
        )
    return fits


# -- Ray ----------------------------------------------------------------------------------------------------


def _execute_on_ray(
    cell: RunCell,
    isolation: str,
    script: str | None,
    env: Mapping[str, str] | None,
    tokenized_cache_dir: Path | None,
) -> RunOutcome:  # pragma: no cover - runs in a Ray worker (covered by the Ray backend test)
    """The Ray task: one run, on whichever node Ray chose (which set ``CUDA_VISIBLE_DEVICES`` for it).

    An in-process run uses exactly the CPUs the task holds, whatever ``OMP_NUM_THREADS`` the node has.
    """
    if isolation == "in-process" and env and "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    return execute_run(
        cell, isolation=isolation, script=script, env=env, tokenized_cache_dir=tokenized_cache_dir
    )


def _forwarded_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(_FORWARDED_PREFIXES)}


def run_ray(store_path: str | Path, options: ExecutionOptions, progress: Progress) -> None:
    """Execute the pending runs as Ray tasks, keeping as many in flight as the cluster fits.

    Raises:
        RuntimeError: Ray is not installed (the fix: ``pip install 'transformers-fine-tuning[ray]'``).
    """
    try:
        import ray
        from ray import exceptions as ray_exceptions
    except ImportError as error:
        raise RuntimeError(
            f"--backend ray needs Ray ({error}); install it with: pip install 'transformers-fine-tuning[ray]'"
        ) from None

    started_here = False
    if not ray.is_initialized():
        init: dict[str, Any] = {
            # no --address: a fresh local instance, never a cluster someone else left running on this machine
            # (Ray's own default joins any it finds); RAY_ADDRESS still names one explicitly
            "address": options.address or os.environ.get("RAY_ADDRESS") or "local",
            "include_dashboard": False,
            "log_to_driver": False,  # run output stays in the runs' logs; the console shows progress
            "runtime_env": {"env_vars": _forwarded_environment()},
        }
        if init["address"] == "local" and options.ray_num_cpus is not None:
            init["num_cpus"] = options.ray_num_cpus
        ray.init(**init)
        started_here = True
    try:
        resources = ray.cluster_resources()
        gpus_per_run = options.gpus_per_run
        if gpus_per_run is None:
            gpus_per_run = 1.0 if resources.get("GPU", 0) > 0 else 0.0
        if options.workers:
            slots = options.workers
        elif gpus_per_run > 0:
            slots = max(1, int(resources.get("GPU", 0) // gpus_per_run))
        else:
            slots = max(1, int(resources.get("CPU", 1) // options.cpus_per_run))
        progress.slots = slots
        remote = ray.remote(
            num_cpus=options.cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=options.max_retries,
            retry_exceptions=False,  # a run's own exceptions are outcomes, recorded as errors, not retried
            # an in-process run on a GPU needs a fresh worker: CUDA cannot switch devices once initialised
            max_calls=1 if gpus_per_run > 0 and options.isolation == "in-process" else 0,
        )(_execute_on_ray)
        env = {
            "OMP_NUM_THREADS": str(max(1, int(options.cpus_per_run))),
            **compile_cache_environment(store_path),
        }
        if gpus_per_run == 0:
            env.update(cpu_run_environment(options.malloc_thresholds))
        _drive_ray(ray, ray_exceptions, remote, store_path, options, progress, slots, env)
    finally:
        if started_here:
            ray.shutdown()


def _drive_ray(ray, ray_exceptions, remote, store_path, options, progress, slots, env) -> None:
    """Claim runs, submit them, collect their outcomes; on interruption cancel and give the claims back."""
    owner = Owner.current("ray-driver")
    tokenized = options.tokenized_cache_dir(store_path)
    in_flight: dict[Any, RunCell] = {}
    last_heartbeat = time.monotonic()
    with StudyStore(store_path) as store:
        try:
            while True:
                while len(in_flight) < slots and (cell := store.claim(owner)) is not None:
                    reference = remote.remote(cell, options.isolation, options.script, env, tokenized)
                    in_flight[reference] = cell
                progress.update(store.counts())
                if not in_flight:
                    return
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=options.poll_interval_s)
                for reference in ready:
                    cell = in_flight.pop(reference)
                    try:
                        outcome = ray.get(reference)
                    except (ray_exceptions.WorkerCrashedError, ray_exceptions.NodeDiedError) as error:
                        store.record_error(
                            cell.run_id, f"Ray: the run's worker died: {error}", status=CRASHED
                        )
                    except ray_exceptions.RayError as error:
                        store.record_error(cell.run_id, f"Ray: {error}", status=ERROR)
                    else:
                        record_outcome(store, outcome)
                        if outcome.status != "completed":
                            print(
                                f"[{progress.name}] {cell.run_id}: {outcome.status}: {_last_line(outcome.error)}"
                            )
                if time.monotonic() - last_heartbeat > options.heartbeat_interval_s:
                    store.heartbeat([cell.run_id for cell in in_flight.values()], owner)
                    last_heartbeat = time.monotonic()
        except BaseException:
            for reference, cell in in_flight.items():
                ray.cancel(reference, force=True)
                store.release(cell.run_id, owner)
            raise
