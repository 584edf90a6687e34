"""A study from start to picture, in the one direction the data flows: spec → store → backend → store → report.

:func:`run_study` is what ``tft-study run`` does: check every run's arguments with the fine-tune job's
parser, add the study's cells to the store (a re-run adds only what is new), mark runs of dead workers as
crashed and re-queue crashed and errored runs that have attempts left, execute the pending runs on the chosen
backend, then write the table and the plots. :func:`write_summary` and :func:`write_plots` redo the last
step from the store alone, at any time, also while the study is still running.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .analysis.scores import score_note, scored_runs
from .analysis.sequential import next_runs_per_recipe, sequential_state
from .report.files import write_report
from .report.plots import plot_paths, plot_study
from .run.backends import ExecutionOptions, run_local, run_ray, run_sequential
from .run.progress import Progress
from .run.runner import finished_results, validate_cells
from .run.spec import STORE_FILE, Restarts, RunCell, StudySpec, UntilDecided, load_spec, parse_seeds
from .run.store import COMPLETED, PENDING, RUNNING, RunRecord, StoreCounts, StudyStore

__all__ = [
    "counts_line",
    "rebuild_store",
    "restart_cells",
    "run_study",
    "sequential_cells",
    "study_directory",
    "write_plots",
    "write_summary",
]

_BACKENDS = {"sequential": run_sequential, "local": run_local, "ray": run_ray}


def counts_line(counts: StoreCounts) -> str:
    """One sentence on the state of a study, for the report and the console."""
    failed = f"{counts.failed_runs} failed run{'' if counts.failed_runs == 1 else 's'}"
    errors = f"{counts.error} error{'' if counts.error == 1 else 's'}"
    return (
        f"{counts.total} runs: {counts.completed} completed ({failed}), {errors}, {counts.crashed} crashed, "
        f"{counts.pending + counts.running} still to run."
    )


def run_study(
    spec: StudySpec,
    options: ExecutionOptions | None = None,
    *,
    retry: bool = False,
    rerun_changed: bool = False,
    stale_after_s: float = 300.0,
    report: bool = True,
    stream: TextIO | None = None,
) -> StoreCounts:
    """Run (or resume) a study; returns the store's final counts.

    Args:
        spec: the study.
        options: backend and execution settings (default: sequential, a subprocess per run, 3 attempts).
        retry: forget the attempts of errored and crashed runs, giving them ``max_attempts`` fresh ones.
        rerun_changed: re-run completed runs whose configuration changed (else that is an error).
        stale_after_s: a running run whose heartbeat is older than this is considered crashed (workers on
            other hosts; on this host a dead process is noticed at once).
        report: write ``summary.md``, ``summary.csv`` and the plots at the end.
        stream: where progress goes (default: standard output).

    Raises:
        ValueError: the fine-tune job rejects a run's arguments, or the study changed under completed runs.
    """
    options = options or ExecutionOptions()
    stream = stream or sys.stdout
    pool = spec.cells()
    validate_cells(pool, options.script)
    with StudyStore(spec.store_path) as store:
        _describe_study(store, spec)
        cells = _chosen_cells(store, pool, spec)
        added = store.sync(cells, rerun_changed=rerun_changed)
        crashed = store.reclaim_dead(stale_after_s=stale_after_s)
        if retry:
            store.reset_attempts()
        requeued = store.requeue(max_attempts=options.max_attempts)
        counts = store.counts()
    print(
        f"[{spec.name}] {len(cells)} runs in the study{_seed_choice(spec)}, "
        f"{counts.completed} already completed; "
        f"{len(added)} new, {len(crashed)} found crashed, {len(requeued)} re-queued; "
        f"{counts.pending} to run on the {options.backend} backend. Store: {spec.store_path}",
        file=stream,
        flush=True,
    )
    progress = Progress(spec.name, slots=options.workers or 1, stream=stream)
    progress.start(counts)
    while counts.pending:
        _BACKENDS[options.backend](spec.store_path, options, progress)
        with StudyStore(spec.store_path) as store:
            if spec.restarts is not None or spec.until_decided is not None:  # the next round, if any
                store.sync(_chosen_cells(store, pool, spec))
            counts = store.counts()
    progress.update(counts)
    if report:
        _write_outputs(spec, stream)
    return counts


def _seed_choice(spec: StudySpec) -> str:
    """How the study chooses its seeds, for its opening line: all (empty), restarts or until decided."""
    if spec.until_decided is not None:
        return (
            f" (until decided: {spec.until_decided.round} seeds a recipe a round, at most {len(spec.seeds)})"
        )
    if spec.restarts is not None:
        return (
            f" (restarts until {spec.restarts.successes} success(es) per task × recipe, at most "
            f"{spec.restarts.max_runs} runs: seeds drawn as needed)"
        )
    return ""


def _write_outputs(spec: StudySpec, stream: TextIO) -> None:
    """The plots (skipped, saying why, without matplotlib) and the summary, each file written said aloud."""
    try:
        written = write_plots(spec.output_dir)
    except RuntimeError as error:  # no matplotlib: the table still gets written
        print(f"[{spec.name}] no plots: {error}", file=stream, flush=True)
        written = []
    for path in [*written, *write_summary(spec.output_dir)]:
        print(f"[{spec.name}] wrote {path}", file=stream, flush=True)


def restart_cells(store: StudyStore, pool: Sequence[RunCell], restarts: Restarts) -> list[RunCell]:
    """The cells a study with restarts runs now: per task × recipe, the pool's cells already taken, and as many
    more (in the pool's order) as it still needs successes — taken runs that did not fail, or are still to
    run, count — without going past ``restarts.max_runs`` runs. A run that ended in an error counts as a
    failure here (the next seed is drawn); it is still retried by the next invocation, as in any study."""
    known = {run.run_id: run for run in store.runs(include_inactive=True)}

    def open_or_success(run: RunRecord) -> bool:
        return not run.failed_run if run.status == COMPLETED else run.status in (PENDING, RUNNING)

    chosen = []
    for group in dict.fromkeys((cell.task, cell.recipe) for cell in pool):
        cells = [cell for cell in pool if (cell.task, cell.recipe) == group]
        taken = [cell for cell in cells if cell.run_id in known]
        hopeful = sum(open_or_success(known[cell.run_id]) for cell in taken)
        more = restarts.runs_to_add(hopeful, len(taken))
        untaken = [cell for cell in cells if cell.run_id not in known]
        chosen += taken + untaken[:more]
    return sorted(chosen, key=lambda cell: cell.position)


def _chosen_cells(store: StudyStore, pool: Sequence[RunCell], spec: StudySpec) -> list[RunCell]:
    """The cells the study runs now: all of them, or those restarts or the sequential decision ask for."""
    if spec.restarts is not None:
        return restart_cells(store, pool, spec.restarts)
    if spec.until_decided is not None:
        return sequential_cells(store, pool, spec)
    return list(pool)


def sequential_cells(store: StudyStore, pool: Sequence[RunCell], spec: StudySpec) -> list[RunCell]:
    """The cells a study ``until_decided`` runs now: per task, the first n cells of each recipe, n the runs a
    recipe its sequential state asks for (:mod:`.analysis.sequential`)."""
    assert spec.until_decided is not None
    runs = store.runs(include_inactive=True)
    recipes = [recipe.name for recipe in spec.recipes]
    chosen = []
    for task in dict.fromkeys(cell.task for cell in pool):
        cells = [cell for cell in pool if cell.task == task]
        per_recipe = max(sum(cell.recipe == recipe for cell in cells) for recipe in recipes)
        state = sequential_state(
            [run for run in runs if run.task == task], recipes, spec.baseline, per_recipe, spec.until_decided
        )
        wanted = next_runs_per_recipe(state, spec.until_decided)
        for recipe in recipes:
            chosen += [cell for cell in cells if cell.recipe == recipe][:wanted]
    return sorted(chosen, key=lambda cell: cell.position)


def rebuild_store(spec: StudySpec, stream: TextIO | None = None) -> StoreCounts:
    """A new store for ``spec`` from its run directories: every run whose directory holds the finished
    ``results.json`` of its configuration is recorded completed, the others pending. An existing store is
    moved aside first (``study.sqlite.replaced-<time>``, with its WAL files), never deleted."""
    stream = stream or sys.stdout
    store_path = spec.store_path
    if store_path.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            old = store_path.with_name(store_path.name + suffix)
            if old.exists():
                old.rename(old.with_name(f"{store_path.name}.replaced-{stamp}{suffix}"))
        print(f"[{spec.name}] moved the old store aside: {store_path}.replaced-{stamp}", file=stream)
    cells = spec.cells()
    with StudyStore(store_path) as store:
        _describe_study(store, spec)
        store.sync(cells)
        recovered = 0
        for cell in cells:
            results = finished_results(cell)
            if results is not None:
                store.record_completed(cell.run_id, results)
                recovered += 1
        counts = store.counts()
    print(
        f"[{spec.name}] rebuilt {store_path}: {recovered} finished run(s) recovered from {spec.output_dir / 'runs'}, "
        f"{counts.pending} to run",
        file=stream,
    )
    return counts


def _describe_study(store: StudyStore, spec: StudySpec) -> None:
    store.set_meta("spec", spec.to_dict())
    store.set_meta("recipes", [recipe.name for recipe in spec.recipes])
    store.set_meta("tasks", [task.name for task in spec.tasks])
    store.set_meta("baseline", spec.baseline)


def study_directory(study: str | Path | StudySpec) -> Path:
    """The directory of a study that has a store: from its spec, its study file (YAML/JSON), its
    ``study.sqlite`` or the directory itself.

    Raises:
        FileNotFoundError: the study has no store yet (it never ran), or the study file does not exist.
    """
    if isinstance(study, StudySpec):
        directory = study.output_dir
    else:
        path = Path(study)
        if path.suffix in (".yaml", ".yml", ".json"):
            directory = load_spec(path).output_dir
        else:
            directory = path.parent if path.name == STORE_FILE else path
    if not (directory / STORE_FILE).is_file():
        raise FileNotFoundError(f"no study store at {directory / STORE_FILE}: run the study first")
    return directory


def write_plots(study: str | Path | StudySpec, output_dir: str | Path | None = None) -> list[Path]:
    """Draw both figures of every task from the study's store into ``<study>/plots``; returns the files."""
    study_dir = study_directory(study)
    with StudyStore(study_dir / STORE_FILE) as store:
        runs, recipes, tasks = store.runs(), store.get_meta("recipes", []), store.get_meta("tasks", [])
    figures = plot_study(runs, Path(output_dir or study_dir / "plots"), recipes=recipes, tasks=tasks)
    return [path for made in figures.values() for _, path in made]


def write_summary(
    study: str | Path | StudySpec,
    *,
    baseline: str | None = None,
    n_resamples: int = 9999,
    target_score: float | None = None,
    score: str | None = None,
) -> tuple[Path, Path]:
    """Write ``summary.md``, ``summary.csv`` and ``expected_max.csv`` into the study's directory from its store.

    ``baseline`` overrides the study's baseline recipe, ``target_score`` its target score, ``score`` its score
    (``final`` or ``best``, :mod:`.analysis.scores`). The Markdown links the plots already drawn.
    """
    study_dir = study_directory(study)
    with StudyStore(study_dir / STORE_FILE) as store:
        runs = store.runs()
        meta_baseline = store.get_meta("baseline")
        spec = store.get_meta("spec", {})
        recipes: Sequence[str] = store.get_meta("recipes", [])
        tasks: Sequence[str] = store.get_meta("tasks", [])
        counts = store.counts()
    baseline = baseline or meta_baseline or (recipes[0] if recipes else runs[0].recipe if runs else "")
    known = list(dict.fromkeys([*recipes, *(run.recipe for run in runs)]))
    if runs and baseline not in known:
        raise ValueError(f"baseline recipe {baseline!r} is not in the study; its recipes are {known}")
    plots = _plot_links(study_dir, runs)
    score = score or spec.get("score") or "final"
    runs = scored_runs(runs, score)
    return write_report(
        runs,
        study_dir,
        notes=_task_notes(runs, spec, recipes, baseline, score),
        title=spec.get("name", study_dir.name),
        baseline=baseline,
        recipes=recipes,
        tasks=tasks,
        counts_line=counts_line(counts),
        plots=plots,
        n_resamples=n_resamples,
        target_score=spec.get("target_score") if target_score is None else target_score,
    )


def _plot_links(study_dir: Path, runs: Sequence[RunRecord]) -> dict[str, list[tuple[str, str]]]:
    """Per task, the plots already drawn: (caption, path relative to the study's directory)."""
    return {
        task: [
            (caption, path.relative_to(study_dir).as_posix())
            for caption, path in plot_paths(study_dir / "plots", task).items()
            if path.is_file()
        ]
        for task in {run.task for run in runs}
    }


def _task_notes(
    runs: Sequence[RunRecord], spec: Mapping[str, Any], recipes: Sequence[str], baseline: str, score: str
) -> dict[str, str]:
    """Per task, what the summary adds under its table: where an ``until_decided`` study's sequential decision
    stands, and what the ``score`` says of the runs (:func:`.analysis.scores.score_note`)."""
    rule = spec.get("until_decided")
    notes = {}
    if rule:
        rule = UntilDecided(**rule)
        for task in dict.fromkeys(run.task for run in runs):
            task_runs = [run for run in runs if run.task == task]
            per_recipe = max(sum(run.recipe == recipe for run in task_runs) for recipe in recipes)
            maximum = len(parse_seeds(spec["seeds"])) if spec.get("seeds") else per_recipe
            notes[task] = sequential_state(
                task_runs, recipes, baseline, max(maximum, per_recipe), rule
            ).sentence(rule)
    note = score_note(runs, score)
    if note:
        for task in dict.fromkeys(run.task for run in runs):
            notes[task] = f"{notes[task]} {note}" if task in notes else note
    return notes
