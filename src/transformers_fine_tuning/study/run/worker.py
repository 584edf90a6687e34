"""One study worker: claim a run from the store, execute it, record the outcome, repeat until none is left.

The sequential backend runs this loop in the calling process; the local backend starts it in N processes
(each a Python running this module's :func:`main` with ``STORE ...``), each with its own GPU or CPU slice. While a
run executes, a heartbeat thread keeps the claim fresh, so that another invocation can tell a live worker from
a dead one. An interrupted worker (Ctrl-C, SIGTERM) gives its claim back before it exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from .runner import ISOLATIONS, RunOutcome, execute_group, execute_run
from .spec import RunCell
from .store import Owner, StudyStore

__all__ = ["Heartbeat", "claim_cells", "interrupt_on_sigterm", "main", "record_outcome", "work_loop"]


class Heartbeat:
    """A daemon thread refreshing the heartbeat of the runs ``owner`` holds, every ``interval_s`` seconds.

    It opens its own store connection (``sqlite3`` connections belong to one thread).
    """

    def __init__(self, store_path: str | Path, owner: Owner, interval_s: float = 30.0) -> None:
        self._store_path, self._owner, self._interval_s = Path(store_path), owner, interval_s
        self._run_ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="study-heartbeat", daemon=True)

    def hold(self, run_id: str) -> None:
        with self._lock:
            self._run_ids.add(run_id)

    def drop(self, run_id: str) -> None:
        with self._lock:
            self._run_ids.discard(run_id)

    def _beat(self) -> None:
        with StudyStore(self._store_path) as store:
            while not self._stop.wait(self._interval_s):
                with self._lock:
                    run_ids = list(self._run_ids)
                store.heartbeat(run_ids, self._owner)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def record_outcome(store: StudyStore, outcome: RunOutcome) -> None:
    """Write a run's outcome to the store: its results when completed, else its error message."""
    if outcome.status == "completed" and outcome.results is not None:
        store.record_completed(
            outcome.run_id, outcome.results, host=outcome.host, wall_time_s=outcome.wall_time_s
        )
    else:
        store.record_error(
            outcome.run_id,
            outcome.error or "unknown error",
            host=outcome.host,
            wall_time_s=outcome.wall_time_s,
        )


def work_loop(
    store_path: str | Path,
    *,
    isolation: str = "subprocess",
    script: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    owner: Owner | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    heartbeat_interval_s: float = 30.0,
    tokenized_cache_dir: str | Path | None = None,
    batch_seeds: int = 1,
) -> int:
    """Claim, execute and record runs until the store has no pending run; returns how many were executed.

    ``on_outcome`` is called after each run is recorded (the sequential backend prints progress there);
    ``tokenized_cache_dir`` is where the runs share their tokenised data (:func:`.runner.execute_run`);
    ``batch_seeds`` > 1 trains up to that many seeds of a recipe together (:func:`.runner.execute_group`).
    On ``KeyboardInterrupt`` the current claim is released (pending again) before the interrupt propagates.
    """
    owner = owner or Owner.current("worker")
    executed = 0
    with StudyStore(store_path) as store, Heartbeat(store_path, owner, heartbeat_interval_s) as heartbeat:
        while cells := claim_cells(store, owner, batch_seeds):
            for cell in cells:
                heartbeat.hold(cell.run_id)
            try:
                if len(cells) > 1:
                    outcomes = execute_group(cells, env=env, tokenized_cache_dir=tokenized_cache_dir)
                else:
                    outcomes = [
                        execute_run(
                            cells[0],
                            isolation=isolation,
                            script=script,
                            env=env,
                            tokenized_cache_dir=tokenized_cache_dir,
                        )
                    ]
            except BaseException:
                for cell in cells:
                    store.release(cell.run_id, owner)
                raise
            finally:
                for cell in cells:
                    heartbeat.drop(cell.run_id)
            for outcome in outcomes:
                record_outcome(store, outcome)
                executed += 1
                if on_outcome is not None:
                    on_outcome(outcome)
    return executed


def claim_cells(store: StudyStore, owner: Owner, batch_seeds: int = 1) -> list[RunCell]:
    """The next pending run and, with ``batch_seeds`` > 1, up to ``batch_seeds - 1`` more of its recipe (other
    seeds, to train together); empty when none is left."""
    first = store.claim(owner)
    if first is None:
        return []
    cells = [first]
    while (
        len(cells) < batch_seeds and first.dropout_seed is None and (cell := store.claim(owner, like=first))
    ):
        cells.append(cell)
    return cells


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """SIGTERM (how a cluster or ``kill`` stops a process) interrupts like Ctrl-C: claims are given back."""
    signal.signal(signal.SIGTERM, _interrupt)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a local worker process; exit status 0 when the store has no pending run left."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the study's study.sqlite")
    parser.add_argument("--isolation", choices=ISOLATIONS, default="subprocess")
    parser.add_argument(
        "--script", default=None, help="a fine-tune script of your own (default: the package's job)"
    )
    parser.add_argument("--slot", type=int, default=0, help="this worker's slot (for the owner label)")
    parser.add_argument("--heartbeat-interval", type=float, default=30.0)
    parser.add_argument("--tokenized-cache-dir", default=None, help="where runs share their tokenised data")
    parser.add_argument("--batch-seeds", type=int, default=1, help="seeds of a recipe trained together")
    options = parser.parse_args(argv)
    interrupt_on_sigterm()
    try:
        executed = work_loop(
            options.store,
            isolation=options.isolation,
            script=options.script,
            owner=Owner.current(f"worker{options.slot}"),
            heartbeat_interval_s=options.heartbeat_interval,
            tokenized_cache_dir=options.tokenized_cache_dir,
            batch_seeds=options.batch_seeds,
        )
    except KeyboardInterrupt:
        return 130
    print(f"study worker {options.slot}: no pending run left after {executed} run(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
