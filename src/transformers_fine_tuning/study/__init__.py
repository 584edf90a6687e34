"""Seed studies: a grid of tasks × recipes × seeds, run to a store that loses nothing, summarised and drawn.

Instability is a property of a distribution of runs, not of one run. A study runs every cell of the grid
(one run of the fine-tune job each) on a sequential, local multi-process or Ray backend, keeps every outcome in
one SQLite database per study, and turns the completed runs into a table (mean, std, failed runs, bootstrap
interval, tests against a baseline recipe) and pictures (final scores per recipe, learning curves per seed).

The data flows one way: :mod:`.spec` (study file → cells) → :mod:`.store` → :mod:`.backends` /
:mod:`.worker` / :mod:`.runner` (execute, record) → :mod:`.store` → :mod:`.stats` → :mod:`.report` and
:mod:`.plots`; :mod:`.pipeline` strings them together and :mod:`.cli` is the command line.
"""

from .backends import BACKENDS, ExecutionOptions
from .pipeline import run_study, write_plots, write_summary
from .plots import plot_final_metrics, plot_learning_curves, plot_study
from .progress import Progress
from .report import GroupSummary, summarize, write_report
from .runner import RunOutcome, execute_run
from .spec import RecipeEntry, RunCell, StudySpec, TaskEntry, load_spec, parse_seeds, spec_from_mapping
from .stats import Comparison, Description, bootstrap_mean_ci, compare, describe
from .store import Owner, RunRecord, StoreCounts, StudyConfigChangedError, StudyStore

__all__ = [
    "BACKENDS",
    "Comparison",
    "Description",
    "ExecutionOptions",
    "GroupSummary",
    "Owner",
    "Progress",
    "RecipeEntry",
    "RunCell",
    "RunOutcome",
    "RunRecord",
    "StoreCounts",
    "StudyConfigChangedError",
    "StudySpec",
    "StudyStore",
    "TaskEntry",
    "bootstrap_mean_ci",
    "compare",
    "describe",
    "execute_run",
    "load_spec",
    "parse_seeds",
    "plot_final_metrics",
    "plot_learning_curves",
    "plot_study",
    "run_study",
    "spec_from_mapping",
    "summarize",
    "write_plots",
    "write_report",
    "write_summary",
]
