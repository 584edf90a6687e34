"""Seed studies: a grid of tasks × recipes × seeds, run to a store that loses nothing, summarised and drawn.

Instability is a property of a distribution of runs, not of one run. A study runs every cell of the grid
(one run of the fine-tune job each) on a sequential, local multi-process or Ray backend, keeps every outcome in
one SQLite database per study, and turns the completed runs into a table (mean, std, failed runs, bootstrap
interval, tests against a baseline recipe with Holm's correction, the expected best of n runs, churn between
seeds, the variance shares of crossed seeds, a verdict) and pictures (final scores per recipe, learning curves
per seed, expected best of n). Studies can prune failing seeds early and restart until success.

The data flows one way: :mod:`.spec` (study file → cells) → :mod:`.store` → :mod:`.backends` /
:mod:`.worker` / :mod:`.runner` (execute, record) → :mod:`.store` → :mod:`.stats` (with :mod:`.effects`,
:mod:`.failure_rates`, :mod:`.power`), :mod:`.expected_max`, :mod:`.noise_floor`, :mod:`.churn`, :mod:`.variance`,
:mod:`.pruning` → :mod:`.report` (the numbers) → :mod:`.verdict` and :mod:`.markdown` (the words), and
:mod:`.plots`; :mod:`.pipeline` strings them together and :mod:`.cli` is the command line.
"""

from .backends import BACKENDS, ExecutionOptions
from .churn import Churn, pairwise_churn
from .expected_max import ExpectedMax, expected_max, expected_max_curve, runs_to_reach
from .pipeline import run_study, write_plots, write_summary
from .plots import plot_expected_max, plot_final_metrics, plot_learning_curves, plot_study
from .progress import Progress
from .pruning import PruningMeasurement, measure_pruning
from .report import GroupSummary, summarize, write_report
from .runner import RunOutcome, execute_run
from .spec import (
    RecipeEntry,
    Restarts,
    RunCell,
    StudySpec,
    TaskEntry,
    load_spec,
    parse_seeds,
    spec_from_mapping,
)
from .stats import Comparison, Description, bootstrap_mean_ci, compare, describe, holm
from .store import Owner, RunRecord, StoreCounts, StudyConfigChangedError, StudyStore
from .variance import VarianceComponents, variance_components
from .verdict import verdicts

__all__ = [
    "BACKENDS",
    "Churn",
    "Comparison",
    "Description",
    "ExecutionOptions",
    "ExpectedMax",
    "GroupSummary",
    "Owner",
    "Progress",
    "PruningMeasurement",
    "RecipeEntry",
    "Restarts",
    "RunCell",
    "RunOutcome",
    "RunRecord",
    "StoreCounts",
    "StudyConfigChangedError",
    "StudySpec",
    "StudyStore",
    "TaskEntry",
    "VarianceComponents",
    "bootstrap_mean_ci",
    "compare",
    "describe",
    "execute_run",
    "expected_max",
    "expected_max_curve",
    "holm",
    "load_spec",
    "measure_pruning",
    "pairwise_churn",
    "parse_seeds",
    "plot_expected_max",
    "plot_final_metrics",
    "plot_learning_curves",
    "plot_study",
    "run_study",
    "runs_to_reach",
    "spec_from_mapping",
    "summarize",
    "variance_components",
    "verdicts",
    "write_plots",
    "write_report",
    "write_summary",
]
