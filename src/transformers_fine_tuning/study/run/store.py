"""The result store of a study: one SQLite database, one row per run, that loses nothing.

Why SQLite (the standard library's ``sqlite3``): every change is a transaction, so a process killed at any
moment leaves the database as it was before or after a change, never in between; in WAL mode readers (a
``status`` in another terminal, the progress line) never block the workers; and several processes on one
machine can share it safely because writes take a database-wide lock (``BEGIN IMMEDIATE``). Keep the store on
a local disk: SQLite's locking is unreliable on network file systems. With the Ray backend only the driver
touches it.

A run's ``status`` is its life in the study, never its quality:

* ``pending``   — to be run;
* ``running``   — claimed by a worker (``owner``: host, process id, token; refreshed by ``heartbeat_at``);
* ``completed`` — finished and its ``results.json`` ingested;
* ``error``     — the fine-tune job raised or exited non-zero; ``error`` holds the message;
* ``crashed``   — its worker died while running it (found by :meth:`StudyStore.reclaim_dead`).

Whether a *completed* run is a **failed run** in the statistical sense of Mosbach et al. (final main metric no
better than the best constant predictor's on the evaluated split, and the other rules of
:mod:`transformers_fine_tuning.failure`) is the separate column ``failed_run``, the rule that fired
``failure_rule``. ``error`` and ``crashed`` runs
are re-queued by the next ``run`` of the study (up to ``max_attempts`` attempts in all).

Claiming is atomic: :meth:`StudyStore.claim` selects and marks the next pending run inside one write
transaction, so two workers never take the same run.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...results import RunResults
from .records import (
    COMPLETED,
    CRASHED,
    ERROR,
    PENDING,
    RUNNING,
    STATUSES,
    RunRecord,
    StoreCounts,
    record_from_row,
)
from .spec import RunCell
from .store_schema import RESULT_COLUMNS, create_or_upgrade, derived_columns

__all__ = [
    "COMPLETED",
    "CRASHED",
    "ERROR",
    "PENDING",
    "RUNNING",
    "STATUSES",
    "Owner",
    "RunRecord",
    "StoreCounts",
    "StoreDamagedError",
    "StudyConfigChangedError",
    "StudyStore",
]


class StudyConfigChangedError(ValueError):
    """Completed runs were made with another configuration than the study file now describes."""


class StoreDamagedError(ValueError):
    """The store's file is not a readable SQLite database (a disk or copy went wrong)."""


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: the host and process, and a token unique to this worker."""

    host: str
    pid: int
    token: str

    @classmethod
    def current(cls, label: str = "") -> Owner:
        """The calling process, with a fresh token (``label`` helps a human reading the store)."""
        token = f"{label}-{uuid.uuid4().hex[:8]}" if label else uuid.uuid4().hex[:8]
        return cls(platform.node(), os.getpid(), token)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: an exited child not yet reaped by its parent is a zombie ("Z")
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class StudyStore:
    """The SQLite store of one study; see the module docstring for the statuses and guarantees.

    One instance per thread (``sqlite3`` connections are not shared between threads); any number of
    processes may open the same file.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write below opens its own explicitly.
        self._connection = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        try:
            self._connection.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute(
                "PRAGMA synchronous = FULL"
            )  # a commit survives a power cut; commits are rare
            with self._transaction() as db:
                create_or_upgrade(db, self.path)
            if self._connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise StoreDamagedError(
                f"{self.path} is damaged ({error}). The run directories beside it keep every finished run: "
                f"rebuild the store from them with `tft-study rebuild STUDY_FILE` (it moves the damaged file "
                "aside first)"
            ) from None
        except BaseException:
            self._connection.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------------------

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: takes the database's write lock up front, so read-then-write is atomic."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    # -- study description ------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` (the study's description, recipe order, baseline...)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def sync(self, cells: Sequence[RunCell], *, rerun_changed: bool = False) -> list[str]:
        """Make the store's active runs the study's cells, adding those it lacks; returns the run ids added.

        Existing runs keep their status and results; their place in the order follows ``cells``. Runs that are
        no longer cells of the study (fewer seeds, a recipe dropped) become inactive: never run, counted or
        summarised, but kept with their results, and active again if the study includes them again. A run whose
        configuration changed is reset to pending if it has no results yet; a *completed* one makes this
        raise, unless ``rerun_changed`` is set (then it is reset and will run again with the new arguments).

        Raises:
            StudyConfigChangedError: completed runs have another configuration hash than their cell.
        """
        added, changed = [], []
        with self._transaction() as db:
            existing = {
                row["run_id"]: row for row in db.execute("SELECT run_id, config_hash, status FROM runs")
            }
            db.execute("UPDATE runs SET active = 0")
            for cell in cells:
                row = existing.get(cell.run_id)
                if row is None:
                    _insert_run(db, cell)
                    added.append(cell.run_id)
                elif not _resync_run(db, cell, row, rerun_changed=rerun_changed):
                    changed.append(cell.run_id)
            if changed:
                shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                raise StudyConfigChangedError(
                    f"{len(changed)} completed run(s) were made with other arguments than the study now "
                    f"describes ({shown}). Give the changed study another `name`/`output_dir`, or pass "
                    "--rerun-changed to run them again with the new arguments."
                )
        return added

    # -- the life of a run ------------------------------------------------------------------------------

    def claim(self, owner: Owner, like: RunCell | None = None) -> RunCell | None:
        """Atomically take the next pending run for ``owner`` (status running); ``None`` when none is left.

        ``like``: only a run of the same task, recipe and training subset, differing in its seeds (batched seeds
        are claimed this way, see :mod:`...batched`); none with a dropout seed of its own."""
        now = time.time()
        query, values = "SELECT * FROM runs WHERE active = 1 AND status = ?", [PENDING]
        if like is not None:
            query += " AND task = ? AND recipe = ? AND subset_seed IS ? AND dropout_seed IS NULL"
            values += [like.task, like.recipe, like.subset_seed]
        with self._transaction() as db:
            row = db.execute(query + " ORDER BY position LIMIT 1", values).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status = ?, attempts = attempts + 1, owner = ?, owner_host = ?, owner_pid = ?, "
                "claimed_at = ?, heartbeat_at = ?, error = NULL WHERE run_id = ?",
                (RUNNING, str(owner), owner.host, owner.pid, now, now, row["run_id"]),
            )
        return record_from_row(row).cell()

    def heartbeat(self, run_ids: Iterable[str], owner: Owner) -> None:
        """Mark ``owner``'s running runs as alive (see :meth:`reclaim_dead`)."""
        run_ids = list(run_ids)
        if not run_ids:
            return
        with self._transaction() as db:
            db.executemany(
                "UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND owner = ? AND status = ?",
                [(time.time(), run_id, str(owner), RUNNING) for run_id in run_ids],
            )

    def record_completed(
        self,
        run_id: str,
        results: RunResults,
        *,
        host: str | None = None,
        wall_time_s: float | None = None,
    ) -> bool:
        """Store a finished run's results; ``False`` if the run was already recorded."""
        columns = derived_columns(results)
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, host = ?, wall_time_s = ?, error = NULL, "
                f"{', '.join(f'{name} = ?' for name in columns)} WHERE run_id = ? AND status != ?",
                (
                    COMPLETED,
                    time.time(),
                    host or results.device.get("host"),
                    wall_time_s if wall_time_s is not None else results.wall_time_s,
                    *columns.values(),
                    run_id,
                    COMPLETED,
                ),
            )
        return cursor.rowcount == 1

    def record_error(
        self,
        run_id: str,
        error: str,
        *,
        status: str = ERROR,
        host: str | None = None,
        wall_time_s: float | None = None,
    ) -> bool:
        """Record that a run raised (``error``) or that its worker died (``crashed``), with the message."""
        if status not in (ERROR, CRASHED):
            raise ValueError(f"status must be {ERROR!r} or {CRASHED!r}, not {status!r}")
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ?, host = ?, wall_time_s = ? "
                "WHERE run_id = ? AND status != ?",
                (status, error, time.time(), host, wall_time_s, run_id, COMPLETED),
            )
        return cursor.rowcount == 1

    def release(self, run_id: str, owner: Owner) -> None:
        """Give an unfinished claim back (the user interrupted the study): pending again, attempt not counted."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, attempts = MAX(attempts - 1, 0), owner = NULL "
                "WHERE run_id = ? AND owner = ? AND status = ?",
                (PENDING, run_id, str(owner), RUNNING),
            )

    def reclaim_dead(self, *, stale_after_s: float = 300.0, host: str | None = None) -> list[str]:
        """Mark ``running`` runs whose worker is gone as ``crashed``; returns their run ids.

        A worker is gone when it ran on this host and its process no longer exists, or when its heartbeat is
        older than ``stale_after_s`` (a worker on another host, a hung process, a reused process id).
        """
        host = host or platform.node()
        now = time.time()
        reclaimed = []
        with self._transaction() as db:
            for row in db.execute(
                "SELECT run_id, owner, owner_host, owner_pid, heartbeat_at FROM runs WHERE status = ?",
                (RUNNING,),
            ).fetchall():
                dead = row["owner_host"] == host and not _pid_alive(row["owner_pid"])
                stale = row["heartbeat_at"] is None or now - row["heartbeat_at"] > stale_after_s
                if dead or stale:
                    why = (
                        "its process died"
                        if dead
                        else f"no heartbeat for {now - (row['heartbeat_at'] or 0):.0f} s"
                    )
                    db.execute(
                        "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
                        (
                            CRASHED,
                            f"worker {row['owner']} stopped while running it ({why})",
                            now,
                            row["run_id"],
                        ),
                    )
                    reclaimed.append(row["run_id"])
        return reclaimed

    def requeue(self, *, max_attempts: int, statuses: Sequence[str] = (ERROR, CRASHED)) -> list[str]:
        """Make ``error``/``crashed`` runs pending again if they have had fewer than ``max_attempts`` attempts."""
        marks = ", ".join("?" for _ in statuses)
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT run_id FROM runs WHERE active = 1 AND status IN ({marks}) AND attempts < ? ORDER BY position",
                (*statuses, max_attempts),
            ).fetchall()
            db.executemany(
                "UPDATE runs SET status = ?, owner = NULL WHERE run_id = ?",
                [(PENDING, r["run_id"]) for r in rows],
            )
        return [row["run_id"] for row in rows]

    def reset_attempts(self, statuses: Sequence[str] = (ERROR, CRASHED)) -> int:
        """Forget the attempts of ``error``/``crashed`` runs, so that ``requeue`` gives them a fresh start."""
        marks = ", ".join("?" for _ in statuses)
        with self._transaction() as db:
            return db.execute(
                f"UPDATE runs SET attempts = 0 WHERE status IN ({marks})", tuple(statuses)
            ).rowcount

    # -- reading ----------------------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        """Runs of the study (active runs) per status, and failed runs among the completed ones."""
        rows = self._connection.execute(
            "SELECT status, COUNT(*) AS n, SUM(COALESCE(failed_run, 0)) AS failed, AVG(wall_time_s) AS wall "
            "FROM runs WHERE active = 1 GROUP BY status"
        ).fetchall()
        by_status = {row["status"]: row["n"] for row in rows}
        completed = next((row for row in rows if row["status"] == COMPLETED), None)
        return StoreCounts(
            **{status: by_status.get(status, 0) for status in STATUSES},
            failed_runs=int(completed["failed"] or 0) if completed else 0,
            mean_wall_time_s=completed["wall"] if completed else None,
        )

    def runs(self, status: str | None = None, *, include_inactive: bool = False) -> list[RunRecord]:
        """The study's runs (or those with ``status``) in execution order; ``include_inactive``: also runs
        that are no longer cells of the study."""
        conditions, parameters = [], []
        if not include_inactive:
            conditions.append("active = 1")
        if status is not None:
            conditions.append("status = ?")
            parameters.append(status)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._connection.execute(f"SELECT * FROM runs{where} ORDER BY position", parameters).fetchall()
        return [record_from_row(row) for row in rows]

    def results(self, run_id: str) -> RunResults | None:
        """The full results of a completed run."""
        row = self._connection.execute("SELECT results_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row["results_json"] is None:
            return None
        return RunResults.from_dict(json.loads(row["results_json"]), source=f"run {run_id} in {self.path}")


def _insert_run(db: sqlite3.Connection, cell: RunCell) -> None:
    """Add a cell the store does not hold yet, pending."""
    db.execute(
        "INSERT INTO runs (run_id, position, task, recipe, seed, data_seed, subset_seed, "
        "dropout_seed, argv_json, config_hash, output_dir, status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cell.run_id,
            cell.position,
            cell.task,
            cell.recipe,
            cell.seed,
            cell.data_seed,
            cell.subset_seed,
            cell.dropout_seed,
            json.dumps(list(cell.argv)),
            cell.config_hash,
            cell.output_dir,
            PENDING,
        ),
    )


def _resync_run(db: sqlite3.Connection, cell: RunCell, row: sqlite3.Row, *, rerun_changed: bool) -> bool:
    """Make a stored run (``row``) active again at its cell's place, and reset it to pending with the cell's
    arguments if its configuration changed; ``False`` for a completed run that changed and is left as it is
    (``rerun_changed`` not set), which :meth:`StudyStore.sync` refuses."""
    db.execute("UPDATE runs SET position = ?, active = 1 WHERE run_id = ?", (cell.position, cell.run_id))
    if cell.same_config(row["config_hash"]):
        if row["config_hash"] != cell.config_hash:  # an older store's hash of the same run
            db.execute(
                "UPDATE runs SET config_hash = ? WHERE run_id = ?",
                (cell.config_hash, cell.run_id),
            )
        return True
    if row["status"] == RUNNING:
        return True
    if row["status"] == COMPLETED and not rerun_changed:
        return False
    db.execute(
        "UPDATE runs SET argv_json = ?, config_hash = ?, output_dir = ?, status = ?, attempts = 0, "
        + ", ".join(f"{column} = NULL" for column in RESULT_COLUMNS)
        + " WHERE run_id = ?",
        (json.dumps(list(cell.argv)), cell.config_hash, cell.output_dir, PENDING, cell.run_id),
    )
    return True
