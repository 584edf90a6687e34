"""A study store's rows as Python values: the run statuses, :class:`RunRecord` (a row decoded) and
:class:`StoreCounts`; :mod:`.store` holds the database and re-exports these names."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, fields
from typing import Any

from ...results import PRUNED, Evaluation
from .spec import RunCell

__all__ = [
    "COMPLETED",
    "CRASHED",
    "ERROR",
    "PENDING",
    "RUNNING",
    "STATUSES",
    "RunRecord",
    "StoreCounts",
    "record_from_row",
]

PENDING, RUNNING, COMPLETED, ERROR, CRASHED = "pending", "running", "completed", "error", "crashed"
STATUSES = (PENDING, RUNNING, COMPLETED, ERROR, CRASHED)


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


def record_from_row(row: sqlite3.Row) -> RunRecord:
    """A row of the ``runs`` table as a :class:`RunRecord`, its JSON columns decoded."""
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
