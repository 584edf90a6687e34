"""The study's pictures, three per task, PNG, readable without the code (matplotlib, no display needed).

* ``<task>-final.png`` — the final main metric of every run, one column per recipe: a box plot of the
  distribution with every run drawn on it as a point (failed runs as red crosses), and the best constant
  baseline as a dashed line. A failed run sits on or below that line.
* ``<task>-curves.png`` — one panel per recipe, one line per seed: the evaluation metric at every evaluation
  during training against the training step. Instability shows at a glance as the runs that stay flat at the
  baseline while the others climb.
* ``<task>-expected-max.png`` — the expected best final score of n runs for n = 1 … N, one line per recipe with
  its bootstrap band: how many restarts each recipe needs.

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, never ``pyplot``: no GUI backend is
touched and no global state is changed for a program that imports this module. matplotlib is imported when a
figure is drawn (``pip install 'transformers-fine-tuning[plot]'``), so studies run without it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...results import metric_curve
from ..analysis.expected_max import expected_max_curve
from ..analysis.summary import constant_baseline_of, order_by
from ..run.store import COMPLETED, RunRecord

__all__ = [
    "PLOTS",
    "curve",
    "plot_expected_max",
    "plot_final_metrics",
    "plot_learning_curves",
    "plot_paths",
    "plot_study",
]

_RUN_COLOUR, _FAILED_COLOUR, _BASELINE_COLOUR = "#1f77b4", "#d62728", "#555555"
_PANELS_PER_ROW = 4


def _matplotlib() -> tuple[Any, Any]:
    """``(Figure, Line2D)``, or an error that says how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError as error:
        raise RuntimeError(
            f"plots need matplotlib ({error}): pip install 'transformers-fine-tuning[plot]'"
        ) from None
    return Figure, Line2D


def _completed(runs: Sequence[RunRecord], task: str) -> list[RunRecord]:
    return [
        run for run in runs if run.task == task and run.status == COMPLETED and run.main_metric is not None
    ]


def curve(run: RunRecord) -> tuple[list[int], list[float]]:
    """(steps, values) of the run's main metric at each evaluation during training."""
    return metric_curve(run.evaluations, run.main_metric_name or "", run.main_metric_split or "")


def _legend_handles(baseline: float | None, *, line: bool) -> list[Any]:
    _, Line2D = _matplotlib()
    style = {"linestyle": "-", "marker": "."} if line else {"linestyle": "none", "marker": "o"}
    failed_style = {"linestyle": "-", "marker": "."} if line else {"linestyle": "none", "marker": "x"}
    handles = [
        Line2D([], [], color=_RUN_COLOUR, label="run", **style),
        Line2D([], [], color=_FAILED_COLOUR, label="failed run", **failed_style),
    ]
    if baseline is not None:
        handles.append(
            Line2D(
                [],
                [],
                color=_BASELINE_COLOUR,
                linestyle="--",
                label=f"best constant predictor ({baseline:.3f})",
            )
        )
    return handles


def plot_final_metrics(
    runs: Sequence[RunRecord], task: str, path: str | Path, *, recipes: Sequence[str] = ()
) -> Path | None:
    """Box plot plus points of the final main metric per recipe on ``task``; ``None`` if no run completed."""
    completed = _completed(runs, task)
    if not completed:
        return None
    order = order_by([run.recipe for run in completed], recipes)
    metric, split = completed[0].main_metric_name, completed[0].main_metric_split
    baseline = constant_baseline_of(completed)
    Figure, _ = _matplotlib()
    figure = Figure(figsize=(max(6.0, 1.7 * len(order) + 2.5), 5.0), dpi=120, layout="constrained")
    axes = figure.subplots()
    generator = np.random.default_rng(0)  # the same jitter every time the plot is redrawn
    labels = []
    for position, recipe in enumerate(order, start=1):
        chosen = [run for run in completed if run.recipe == recipe]
        values = np.array([run.main_metric for run in chosen], dtype=float)
        failed = np.array([bool(run.failed_run) for run in chosen])
        axes.boxplot(
            [values],
            positions=[position],
            widths=0.55,
            showfliers=False,
            medianprops={"color": "black"},
            boxprops={"color": "#444444"},
            whiskerprops={"color": "#444444"},
            capprops={"color": "#444444"},
        )
        jitter = position + generator.uniform(-0.14, 0.14, size=values.size)
        axes.scatter(jitter[~failed], values[~failed], s=22, color=_RUN_COLOUR, alpha=0.75, zorder=3)
        axes.scatter(jitter[failed], values[failed], s=34, color=_FAILED_COLOUR, marker="x", zorder=3)
        labels.append(f"{recipe}\nn={values.size}, {int(failed.sum())} failed")
    if baseline is not None:
        axes.axhline(baseline, color=_BASELINE_COLOUR, linestyle="--", linewidth=1.2, zorder=1)
    axes.set_xticks(range(1, len(order) + 1), labels)
    axes.set_xlim(0.4, len(order) + 0.6)
    axes.set_ylabel(f"final {metric} on {split}")
    axes.set_title(f"{task}: final {metric} of every run, by recipe")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(handles=_legend_handles(baseline, line=False), loc="best", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_expected_max(
    runs: Sequence[RunRecord], task: str, path: str | Path, *, recipes: Sequence[str] = ()
) -> Path | None:
    """The expected best final score of n runs against n, one line per recipe with its bootstrap band
    (:mod:`..analysis.expected_max`), the best constant predictor dashed; ``None`` if no recipe has two completed runs."""
    completed = _completed(runs, task)
    order = order_by([run.recipe for run in completed], recipes)
    curves = {}
    for recipe in order:
        values = [run.main_metric for run in completed if run.recipe == recipe]
        if len(values) >= 2:
            curves[recipe] = expected_max_curve(values)
    if not curves:
        return None
    metric, split = completed[0].main_metric_name, completed[0].main_metric_split
    baseline = constant_baseline_of(completed)
    Figure, _ = _matplotlib()
    figure = Figure(figsize=(6.8, 4.6), dpi=120, layout="constrained")
    axes = figure.subplots()
    colours = [f"C{i}" for i in range(10)]
    for colour, (recipe, curve) in zip(itertools.cycle(colours), curves.items()):
        axes.plot(curve.n, curve.mean, color=colour, marker=".", label=f"{recipe} (N={len(curve.n)})")
        axes.fill_between(curve.n, curve.low, curve.high, color=colour, alpha=0.15, linewidth=0)
    if baseline is not None:
        axes.axhline(
            baseline, color=_BASELINE_COLOUR, linestyle="--", linewidth=1.0, label="best constant predictor"
        )
    axes.set_xlabel("n, the number of runs (seeds) tried")
    axes.set_ylabel(f"expected best {metric} on {split}")
    axes.set_title(f"{task}: expected best of n runs (95 % bootstrap band)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_learning_curves(
    runs: Sequence[RunRecord], task: str, path: str | Path, *, recipes: Sequence[str] = ()
) -> Path | None:
    """One panel per recipe, one line per seed: the evaluation metric against the step; ``None`` if no curve."""
    completed = [run for run in _completed(runs, task) if curve(run)[0]]
    if not completed:
        return None
    order = order_by([run.recipe for run in completed], recipes)
    metric, split = completed[0].main_metric_name, completed[0].main_metric_split
    baseline = constant_baseline_of(completed)
    columns = min(len(order), _PANELS_PER_ROW)
    rows = math.ceil(len(order) / columns)
    Figure, _ = _matplotlib()
    figure = Figure(figsize=(3.6 * columns + 0.8, 3.2 * rows + 0.9), dpi=120, layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, columns, sharey=True, squeeze=False)).reshape(-1)
    for axes, recipe in zip(grid, order, strict=False):
        chosen = [run for run in completed if run.recipe == recipe]
        for run in sorted(chosen, key=lambda run: bool(run.failed_run)):  # failed runs drawn on top
            steps, values = curve(run)
            colour = _FAILED_COLOUR if run.failed_run else _RUN_COLOUR
            axes.plot(steps, values, color=colour, alpha=0.65, linewidth=1.1, marker=".", markersize=4)
        if baseline is not None:
            axes.axhline(baseline, color=_BASELINE_COLOUR, linestyle="--", linewidth=1.0)
        failed = sum(bool(run.failed_run) for run in chosen)
        axes.set_title(f"{recipe} (n={len(chosen)}, {failed} failed)", fontsize="medium")
        axes.set_xlabel("training step")
        axes.grid(alpha=0.3)
    for axes in grid[len(order) :]:
        axes.set_visible(False)
    for axes in grid[::columns]:
        axes.set_ylabel(f"{metric} on {split}")
    figure.legend(
        handles=_legend_handles(baseline, line=True), loc="outside lower center", ncols=3, fontsize="small"
    )
    figure.suptitle(f"{task}: {split} {metric} during training, one line per seed")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


PLOTS = {
    "final": "final metric of every run",
    "curves": "learning curves",
    "expected-max": "expected best of n runs",
}
"""The figures of a task, ``<task>-<kind>.png``, and their captions."""


def plot_paths(plots_dir: str | Path, task: str) -> dict[str, Path]:
    """{caption: path} of the figures of ``task`` under ``plots_dir``, drawn or not."""
    return {caption: Path(plots_dir) / f"{task}-{kind}.png" for kind, caption in PLOTS.items()}


def plot_study(
    runs: Sequence[RunRecord],
    output_dir: str | Path,
    *,
    recipes: Sequence[str] = (),
    tasks: Sequence[str] = (),
) -> dict[str, list[tuple[str, Path]]]:
    """Every figure of every task with completed runs, into ``output_dir``; returns {task: [(caption, path)]}."""
    drawers = {"final": plot_final_metrics, "curves": plot_learning_curves, "expected-max": plot_expected_max}
    figures: dict[str, list[tuple[str, Path]]] = {}
    for task in order_by([run.task for run in runs], tasks):
        paths = plot_paths(output_dir, task)
        made = [
            (caption, drawers[kind](runs, task, paths[caption], recipes=recipes))
            for kind, caption in PLOTS.items()
        ]
        figures[task] = [(caption, path) for caption, path in made if path is not None]
    return figures
