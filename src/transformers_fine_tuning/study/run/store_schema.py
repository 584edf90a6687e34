"""The study store's tables: their schema, the upgrade of an older store when it is opened, and the columns a
completed run's results decide (one derivation for a new run and for an upgrade). :mod:`.store` runs it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ...results import RunResults
from .records import STATUSES

__all__ = ["RESULT_COLUMNS", "SCHEMA_VERSION", "create_or_upgrade", "derived_columns"]

SCHEMA_VERSION = 3
"""1: the first store. 2: ``resumed_from_step``, ``subset_seed``, ``dropout_seed``; ``evaluations_json`` holds
:class:`~...results.Evaluation`s. 3: ``constant_baseline`` and ``failure_rule``; every run judged by
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


def create_or_upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a new store, or bring an older store (``path``, for the message) up to
    :data:`SCHEMA_VERSION`, inside the caller's write transaction ``db``.

    Raises:
        ValueError: the store was written by a newer version of the package.
    """
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = None if row is None else int(row["value"])
    if version is not None and version > SCHEMA_VERSION:
        raise ValueError(
            f"{path} is a study store of version {version}; this transformers-fine-tuning reads "
            f"versions up to {SCHEMA_VERSION}: upgrade the package to read it"
        )
    _add_missing_columns(db)
    if version is not None and version < SCHEMA_VERSION:
        _upgrade(db)
    db.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Columns added to the schema after a store was created (all nullable) are added to it."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
    for column, kind in _ADDED_COLUMNS.items():
        if column not in columns:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")


def _upgrade(db: sqlite3.Connection) -> None:
    """From an older version: derive the result columns again from each run's (upgraded) results."""
    rows = db.execute("SELECT run_id, results_json FROM runs WHERE results_json IS NOT NULL").fetchall()
    for row in rows:
        results = RunResults.from_dict(json.loads(row["results_json"]), source=f"run {row['run_id']}")
        columns = derived_columns(results)
        db.execute(
            f"UPDATE runs SET {', '.join(f'{name} = ?' for name in columns)} WHERE run_id = ?",
            (*columns.values(), row["run_id"]),
        )


RESULT_COLUMNS = (
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
"""The columns a run's outcome fills: emptied when a changed run is reset to pending."""


_ADDED_COLUMNS = {
    "resumed_from_step": "INTEGER",
    "subset_seed": "INTEGER",
    "dropout_seed": "INTEGER",
    "constant_baseline": "REAL",
    "failure_rule": "TEXT",
}
"""Columns added after the first store, with their types (added to an older store when it is opened)."""


def derived_columns(results: RunResults) -> dict[str, Any]:
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


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
