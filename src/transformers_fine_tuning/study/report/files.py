"""A study's report files, written from the same numbers twice: ``summary.md`` for people (:mod:`.verdict` writes
the verdict line per task, :mod:`.markdown` the tables; the plots linked beneath) and ``summary.csv`` /
``expected_max.csv`` for programs (:mod:`.tables`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...atomic import write_text_atomic
from ..analysis.costs import study_costs
from ..analysis.summary import summarize
from ..run.store import RunRecord
from . import markdown
from .tables import write_csv, write_expected_max_csv

__all__ = ["write_report"]


def write_report(
    runs: Sequence[RunRecord],
    output_dir: str | Path,
    *,
    title: str,
    baseline: str,
    recipes: Sequence[str] = (),
    tasks: Sequence[str] = (),
    counts_line: str = "",
    plots: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    n_resamples: int = 9999,
    target_score: float | None = None,
    notes: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write ``summary.md``, ``summary.csv`` and ``expected_max.csv`` into ``output_dir``; returns the first two.
    ``notes[task]``: a sentence added to the task's verdict (a sequential study's state)."""
    output_dir = Path(output_dir)
    summaries = summarize(
        runs,
        baseline=baseline,
        recipes=recipes,
        tasks=tasks,
        n_resamples=n_resamples,
        target_score=target_score,
    )
    summary_md = write_text_atomic(
        output_dir / "summary.md",
        markdown.render(
            summaries,
            title=title,
            counts_line=counts_line,
            plots=plots,
            target_score=target_score,
            costs=study_costs(runs),
            notes=notes,
        ),
    )
    write_expected_max_csv(summaries, output_dir / "expected_max.csv")
    return summary_md, write_csv(summaries, output_dir / "summary.csv")
