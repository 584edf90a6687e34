"""Seed studies: a grid of tasks × recipes × seeds, run to a store that loses nothing, summarised and drawn.

Instability is a property of a distribution of runs, not of one run. A study runs every cell of the grid
(one run of the fine-tune job each) on a sequential, local multi-process or Ray backend, keeps every outcome in
one SQLite database per study, and turns the completed runs into a table (mean, std, failed runs, bootstrap
interval, tests against a baseline recipe with Holm's correction, the expected best of n runs, churn between
seeds, the variance shares of crossed seeds, a verdict) and pictures (final scores per recipe, learning curves
per seed, expected best of n). Studies can prune failing seeds early and restart until success.

The data flows one way, through three subpackages: :mod:`.run` (the study file read into cells by
:mod:`.run.spec`, kept in :mod:`.run.store`, executed by :mod:`.run.backends` / :mod:`.run.worker` /
:mod:`.run.runner`, recorded back in the store) → :mod:`.analysis` (the numbers: :mod:`.analysis.stats` with
:mod:`.analysis.effects`, :mod:`.analysis.failure_rates` and :mod:`.analysis.power`, the expected best of n runs,
the noise floor, churn, variance shares, pruning, gathered per task × recipe by :mod:`.analysis.summary`) →
:mod:`.report` (the words, tables, files and pictures: :mod:`.report.verdict`, :mod:`.report.markdown`,
:mod:`.report.tables`, :mod:`.report.files`, :mod:`.report.plots`). Nothing imports against that flow;
:mod:`.pipeline` strings the three together and :mod:`.cli` is the command line.
"""

from .analysis.churn import Churn, pairwise_churn
from .analysis.expected_max import ExpectedMax, expected_max, expected_max_curve, runs_to_reach
from .analysis.pruning import PruningMeasurement, measure_pruning
from .analysis.stats import Comparison, Description, bootstrap_mean_ci, compare, describe, holm
from .analysis.summary import GroupSummary, summarize
from .analysis.variance import VarianceComponents, variance_components
from .pipeline import run_study, write_plots, write_summary
from .report.files import write_report
from .report.plots import plot_expected_max, plot_final_metrics, plot_learning_curves, plot_study
from .report.verdict import verdicts
from .run.backends import BACKENDS, ExecutionOptions
from .run.progress import Progress
from .run.runner import RunOutcome, execute_run
from .run.spec import (
    RecipeEntry,
    Restarts,
    RunCell,
    StudySpec,
    TaskEntry,
    load_spec,
    parse_seeds,
    spec_from_mapping,
)
from .run.store import Owner, RunRecord, StoreCounts, StudyConfigChangedError, StudyStore

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
