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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..results import PRUNED, Evaluation, RunResults
from .spec import RunCell

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

PENDING, RUNNING, COMPLETED, ERROR, CRASHED = "pending", "running", "completed", "error", "crashed"
STATUSES = (PENDING, RUNNING, COMPLETED, ERROR, CRASHED)
SCHEMA_VERSION = 3
"""1: the first store. 2: ``resumed_from_step``, ``subset_seed``, ``dropout_seed``; ``evaluations_json`` holds
:class:`~..results.Evaluation`s. 3: ``constant_baseline`` and ``failure_rule``; every run judged by
:mod:`transformers_fine_tuning.failure`. An older store is upgraded in place when opened: the columns are added
and every result column derived again from each run's results (read, and so judged, as today's schema)."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id            TEXT PRIMARY KEY,
    position          INTEGER NOT NULL,
    task              TEXT NOT NULL,
    recipe            TEXT NOT NULL,
    seed              INTEGER NOT NULL,
    data_seed         INTEGER NOT NULL,
    subset_seed       INTEGER,
    dropout_seed      INTEGER,
    argv_json         TEXT NOT NULL,
    config_hash       TEXT NOT NULL,
    output_dir        TEXT NOT NULL,
    active            INTEGER NOT NULL DEFAULT 1,
    status            TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    attempts          INTEGER NOT NULL DEFAULT 0,
    owner             TEXT,
    owner_host        TEXT,
    owner_pid         INTEGER,
    claimed_at        REAL,
    heartbeat_at      REAL,
    finished_at       REAL,
    host              TEXT,
    wall_time_s       REAL,
    main_metric_name  TEXT,
    main_metric_split TEXT,
    main_metric       REAL,
    constant_baseline REAL,
    failed_run        INTEGER,
    failure_rule      TEXT,
    metrics_json      TEXT,
    evaluations_json  TEXT,
    results_json      TEXT,
    resumed_from_step INTEGER,
    error             TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (active, status, position);
"""


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


@dataclass(frozen=True)
class RunRecord(RunCell):
    """A row of the store: the run's :class:`RunCell` and what became of it, the JSON columns decoded — what the
    summary and the plots read."""

    status: str = PENDING
    attempts: int = 0
    owner: str | None = None
    host: str | None = None
    wall_time_s: float | None = None
    main_metric_name: str | None = None
    main_metric_split: str | None = None
    main_metric: float | None = None
    constant_baseline: float | None = None
    failed_run: bool | None = None
    failure_rule: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Evaluation] = field(default_factory=list)
    resumed_from_step: int | None = None
    predictions: dict[str, list[float]] = field(default_factory=dict)
    labels: dict[str, list[float]] = field(default_factory=dict)
    stopped_early: str | None = None
    global_step: int | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def pruned(self) -> bool:
        """Whether an early test stopped the run as failing (``--prune``): a failed run, stopped early."""
        return self.stopped_early in PRUNED

    def cell(self) -> RunCell:
        """The run as a :class:`RunCell`, as a worker needs it to execute the run."""
        return RunCell(**{f.name: getattr(self, f.name) for f in fields(RunCell)})


@dataclass(frozen=True)
class StoreCounts:
    """How many runs are in each status, and how many completed runs are failed runs."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    error: int = 0
    crashed: int = 0
    failed_runs: int = 0
    mean_wall_time_s: float | None = None  # of the completed runs, for the time-left estimate

    @property
    def total(self) -> int:
        return self.pending + self.running + self.completed + self.error + self.crashed

    @property
    def done(self) -> int:
        """Runs that need nothing more from this invocation: completed, or stopped by an error."""
        return self.completed + self.error + self.crashed


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


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


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
            self._create_or_upgrade()
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

    def _create_or_upgrade(self) -> None:
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = None if row is None else int(row["value"])
            if version is not None and version > SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path} is a study store of version {version}; this transformers-fine-tuning reads "
                    f"versions up to {SCHEMA_VERSION}: upgrade the package to read it"
                )
            self._add_missing_columns(db)
            if version is not None and version < SCHEMA_VERSION:
                self._upgrade(db)
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    @staticmethod
    def _add_missing_columns(db: sqlite3.Connection) -> None:
        """Columns added to the schema after a store was created (all nullable) are added to it."""
        columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

    @staticmethod
    def _upgrade(db: sqlite3.Connection) -> None:
        """From an older version: derive the result columns again from each run's (upgraded) results."""
        rows = db.execute("SELECT run_id, results_json FROM runs WHERE results_json IS NOT NULL").fetchall()
        for row in rows:
            results = RunResults.from_dict(json.loads(row["results_json"]), source=f"run {row['run_id']}")
            columns = _derived_columns(results)
            db.execute(
                f"UPDATE runs SET {', '.join(f'{name} = ?' for name in columns)} WHERE run_id = ?",
                (*columns.values(), row["run_id"]),
            )

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
                    added.append(cell.run_id)
                    continue
                db.execute(
                    "UPDATE runs SET position = ?, active = 1 WHERE run_id = ?", (cell.position, cell.run_id)
                )
                if cell.same_config(row["config_hash"]):
                    if row["config_hash"] != cell.config_hash:  # an older store's hash of the same run
                        db.execute(
                            "UPDATE runs SET config_hash = ? WHERE run_id = ?",
                            (cell.config_hash, cell.run_id),
                        )
                    continue
                if row["status"] == RUNNING:
                    continue
                if row["status"] == COMPLETED and not rerun_changed:
                    changed.append(cell.run_id)
                    continue
                db.execute(
                    "UPDATE runs SET argv_json = ?, config_hash = ?, output_dir = ?, status = ?, attempts = 0, "
                    + ", ".join(f"{column} = NULL" for column in _RESULT_COLUMNS)
                    + " WHERE run_id = ?",
                    (json.dumps(list(cell.argv)), cell.config_hash, cell.output_dir, PENDING, cell.run_id),
                )
            if changed:
                shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                raise StudyConfigChangedError(
                    f"{len(changed)} completed run(s) were made with other arguments than the study now "
                    f"describes ({shown}). Give the changed study another `name`/`output_dir`, or pass "
                    "--rerun-changed to run them again with the new arguments."
                )
        return added

    # -- the life of a run ------------------------------------------------------------------------------

    def claim(self, owner: Owner) -> RunCell | None:
        """Atomically take the next pending run for ``owner`` (status running); ``None`` when none is left."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM runs WHERE active = 1 AND status = ? ORDER BY position LIMIT 1", (PENDING,)
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE runs SET status = ?, attempts = attempts + 1, owner = ?, owner_host = ?, owner_pid = ?, "
                "claimed_at = ?, heartbeat_at = ?, error = NULL WHERE run_id = ?",
                (RUNNING, str(owner), owner.host, owner.pid, now, now, row["run_id"]),
            )
        return self._record(row).cell()

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
        columns = _derived_columns(results)
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
        return [self._record(row) for row in rows]

    def results(self, run_id: str) -> RunResults | None:
        """The full results of a completed run."""
        row = self._connection.execute("SELECT results_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row["results_json"] is None:
            return None
        return RunResults.from_dict(json.loads(row["results_json"]), source=f"run {run_id} in {self.path}")

    @staticmethod
    def _record(row: sqlite3.Row) -> RunRecord:
        results = json.loads(row["results_json"]) if row["results_json"] else {}
        return RunRecord(
            run_id=row["run_id"],
            position=row["position"],
            task=row["task"],
            recipe=row["recipe"],
            seed=row["seed"],
            data_seed=row["data_seed"],
            status=row["status"],
            attempts=row["attempts"],
            output_dir=row["output_dir"],
            config_hash=row["config_hash"],
            argv=tuple(json.loads(row["argv_json"])),
            subset_seed=row["subset_seed"],
            dropout_seed=row["dropout_seed"],
            owner=row["owner"],
            host=row["host"],
            wall_time_s=row["wall_time_s"],
            main_metric_name=row["main_metric_name"],
            main_metric_split=row["main_metric_split"],
            main_metric=row["main_metric"],
            constant_baseline=row["constant_baseline"],
            failed_run=None if row["failed_run"] is None else bool(row["failed_run"]),
            failure_rule=row["failure_rule"],
            metrics=json.loads(row["metrics_json"] or "{}"),
            evaluations=[Evaluation(**entry) for entry in json.loads(row["evaluations_json"] or "[]")],
            resumed_from_step=row["resumed_from_step"],
            predictions=results.get("predictions") or {},
            labels=results.get("labels") or {},
            stopped_early=results.get("stopped_early"),
            global_step=results.get("global_step"),
            diagnostics=results.get("diagnostics") or {},
            timings=results.get("timings") or {},
            error=row["error"],
        )


_RESULT_COLUMNS = (
    "owner",
    "claimed_at",
    "heartbeat_at",
    "finished_at",
    "host",
    "wall_time_s",
    "main_metric_name",
    "main_metric_split",
    "main_metric",
    "constant_baseline",
    "failed_run",
    "failure_rule",
    "metrics_json",
    "evaluations_json",
    "results_json",
    "resumed_from_step",
    "error",
)


_ADDED_COLUMNS = {
    "resumed_from_step": "INTEGER",
    "subset_seed": "INTEGER",
    "dropout_seed": "INTEGER",
    "constant_baseline": "REAL",
    "failure_rule": "TEXT",
}
"""Columns added after the first store, with their types (added to an older store when it is opened)."""


def _derived_columns(results: RunResults) -> dict[str, Any]:
    """The columns of a completed run that its results decide, by column name: one derivation for a new run
    and for the upgrade of an older store."""
    content = results.to_dict()
    main = results.main_metric
    return {
        "main_metric_name": main.name,
        "main_metric_split": main.split,
        "main_metric": _float(main.value),
        "constant_baseline": _float(results.main_baseline),
        "failed_run": int(bool(results.failed)),
        "failure_rule": results.failure.rule if results.failure else None,
        "metrics_json": json.dumps(content["metrics"]),
        "evaluations_json": json.dumps(content["evaluations"]),
        "results_json": json.dumps(content),
        "resumed_from_step": _resumed_step(results),
    }


def _resumed_step(results: RunResults) -> int | None:
    return None if results.resumed_from is None else results.resumed_from.step
