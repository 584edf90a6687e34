"""The ``tft-study`` command (also ``python -m transformers_fine_tuning.study``, ``scripts/study.py``).

    tft-study run study.yaml [--backend sequential|local|ray] [--workers N] [--address ADDR] [--in-process]
    tft-study run --tasks rte --recipes devlin2019,mosbach2021 --seeds 0-24 -- --model_name_or_path DIR ...
    tft-study status  study.yaml | STUDY_DIR          # runs done, failed runs, errors, per recipe
    tft-study summary study.yaml | STUDY_DIR [--baseline RECIPE]   # summary.md + summary.csv
    tft-study plot    study.yaml | STUDY_DIR          # plots/<task>-final.png, -curves.png, -expected-max.png
    tft-study pruning study.yaml | STUDY_DIR          # precision, recall, compute saved of the early tests
    tft-study pruning STUDY --fractions 0.2,0.5 --keep 0.5   # ... and of the relative test at those fractions
    tft-study rebuild study.yaml                      # a new store from the run directories

``run`` on a study that already ran resumes it: completed runs are skipped, crashed and errored runs run
again (from their last checkpoint, when they saved any). Flags given to ``run`` override the file's keys;
flags after ``--`` are fine-tune flags shared by every run (merged into the file's ``arguments``). Bad input stops with one line on stderr and exit status 2;
an interrupted study (Ctrl-C, SIGTERM) gives its claims back and exits with status 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..results import PRUNING_TESTS
from .analysis.pruning import measure_pruning, measure_relative_pruning, render_pruning
from .analysis.scores import SCORES
from .pipeline import counts_line, rebuild_store, run_study, study_directory, write_plots, write_summary
from .run.backends import BACKENDS, ExecutionOptions
from .run.spec import STORE_FILE, StudySpec, load_spec
from .run.store import COMPLETED, CRASHED, ERROR, PENDING, RUNNING, StudyStore
from .run.worker import interrupt_on_sigterm

__all__ = ["main"]


def _flags_to_arguments(tokens: list[str]) -> dict[str, Any]:
    """``["--max_seq_length", "128", "--fp16", "--report_to", "none", "wandb"]`` -> a dict of values.

    Values stay the strings given (the fine-tune job parses them); a flag without a value is ``True``.
    """
    arguments: dict[str, Any] = {}
    key: str | None = None
    for token in tokens:
        if token.startswith("--"):
            name, _, inline = token[2:].partition("=")
            key = name
            arguments[key] = inline if inline else True
            continue
        if key is None:
            raise ValueError(f"fine-tune flags after `--` must start with `--`; got {token!r}")
        value = token
        current = arguments[key]
        if current is True:
            arguments[key] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            arguments[key] = [current, value]
    return arguments


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def program_name() -> str:
    """How the user started the command, for messages: ``tft-study``, ``study.py`` or the ``-m`` form."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m transformers_fine_tuning.study" if name in ("", "-c", "__main__.py") else name


def _parser() -> argparse.ArgumentParser:
    """The command line: ``run`` and the commands on a study's store."""
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Seed studies: many fine-tune runs, one table, one picture.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_command(commands)
    _add_store_commands(commands)
    return parser


def _add_run_command(commands: argparse._SubParsersAction) -> None:
    """``run``: the study (a file, flags overriding its keys) and how to execute it."""
    run = commands.add_parser("run", help="run or resume a study", description="Run or resume a study.")
    run.add_argument("study", nargs="?", help="study file (YAML or JSON); or describe the study with flags")
    _add_study_arguments(run.add_argument_group("the study (override the file's keys)"))
    execution = run.add_argument_group("execution")
    _add_backend_arguments(execution)
    _add_attempt_arguments(execution)


def _add_study_arguments(grid: argparse._ArgumentGroup) -> None:
    """``run``'s flags for the study's keys: its grid, baseline, pruning, restarts and target."""
    grid.add_argument("--name", help="the study's name (default: the file's name)")
    grid.add_argument("--output-dir", help="where the store, runs, table and plots go (runs/studies/<name>)")
    grid.add_argument("--tasks", type=_comma_list, help="comma-separated GLUE tasks, e.g. rte,mrpc")
    grid.add_argument("--recipes", type=_comma_list, help="comma-separated recipe names or files")
    grid.add_argument("--seeds", help="head-initialisation seeds: '0-24', '0-4,10', '3'")
    grid.add_argument("--data-seeds", help="data-order seeds, crossed with --seeds; 'same' (default) = seed")
    grid.add_argument("--dropout-seeds", help="dropout seeds, crossed with the others (default: = seed)")
    grid.add_argument(
        "--subset-seeds", help="training-subset seeds (with max_train_samples), crossed with the others"
    )
    grid.add_argument("--baseline", help="the recipe the others are tested against (default: the first)")
    grid.add_argument("--prune", choices=PRUNING_TESTS, help="stop runs an early test flags as failing")
    grid.add_argument(
        "--restarts",
        type=int,
        metavar="N",
        help="draw seeds (from --seeds, in order) until N runs per task × recipe did not fail",
    )
    grid.add_argument("--max-runs", type=int, help="with --restarts: the most runs per task × recipe")
    grid.add_argument(
        "--until-decided",
        type=int,
        metavar="R",
        help="add seeds (from --seeds, in order) R a recipe at a time until every comparison with the baseline "
        "is decided (O'Brien–Fleming alpha spending, α = 0.05), at most all of --seeds",
    )
    grid.add_argument(
        "--target-score", type=float, help="the summary says how many runs are expected to reach it"
    )


def _add_backend_arguments(execution: argparse._ArgumentGroup) -> None:
    """``run``'s flags for where and how each run executes (backend, workers, resources, the job)."""
    execution.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sequential",
        help="where runs execute (default: one by one here)",
    )
    execution.add_argument(
        "--workers",
        type=int,
        help="local: worker processes (default: one per GPU, else 1); ray: runs at once",
    )
    execution.add_argument(
        "--runs-per-gpu",
        type=int,
        default=1,
        help="local: K runs at once on each GPU, as many as a first run's peak memory says fit (default: 1)",
    )
    execution.add_argument(
        "--address", help="ray: cluster address ('auto', 'ray://host:10001'); default: local"
    )
    execution.add_argument(
        "--fork-server",
        action="store_true",
        help="start each run as a fresh child of a server process that has the job imported (no start-up per run)",
    )
    execution.add_argument(
        "--in-process",
        action="store_true",
        help="run the fine-tune job inside the worker instead of a fresh process per run (fast for tiny runs)",
    )
    execution.add_argument(
        "--script",
        help="a fine-tune script of your own that takes the job's flags (default: the package's job)",
    )
    execution.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs per run")
    execution.add_argument("--gpus-per-run", type=float, help="ray: GPUs per run (default: 1 if any, else 0)")
    execution.add_argument("--ray-num-cpus", type=int, help="ray: CPUs of the local instance started")
    execution.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc thresholds to glibc in CPU runs (by default fixed: about 10 %% faster steps)",
    )
    execution.add_argument(
        "--tokenize-each-run",
        action="store_true",
        help="every run tokenises its data (by default the runs share one tokenised copy in <study>/tokenized)",
    )
    execution.add_argument(
        "--batch-seeds",
        type=int,
        default=1,
        metavar="N",
        help="train up to N seeds of a recipe together, as one batched computation (runs it cannot batch go singly)",
    )


def _add_attempt_arguments(execution: argparse._ArgumentGroup) -> None:
    """``run``'s flags for attempts, re-runs, crash detection and the report at the end."""
    execution.add_argument("--max-attempts", type=int, default=3, help="attempts per run before giving up")
    execution.add_argument("--retry", action="store_true", help="give errored/crashed runs fresh attempts")
    execution.add_argument(
        "--rerun-changed", action="store_true", help="re-run completed runs whose arguments changed"
    )
    execution.add_argument(
        "--stale-after",
        type=float,
        default=300.0,
        help="seconds without heartbeat before a run counts as crashed",
    )
    execution.add_argument(
        "--no-report", action="store_true", help="do not write the table and plots at the end"
    )


def _add_store_commands(commands: argparse._SubParsersAction) -> None:
    """The commands that read (or rebuild) a study's store: status, summary, plot, pruning, rebuild."""
    for name, text in (
        ("status", "runs done, failed runs and errors, per task and recipe"),
        ("summary", "write summary.md and summary.csv"),
        ("plot", "draw the plots"),
        ("pruning", "how well the early tests predict the final verdicts (a study run without pruning)"),
        ("rebuild", "a new store from the run directories (a damaged store is moved aside first)"),
    ):
        command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        command.add_argument(
            "study",
            help="the study file"
            if name == "rebuild"
            else "study file, study directory, or its study.sqlite",
        )
        if name == "pruning":
            _add_pruning_arguments(command)
        if name == "summary":
            _add_summary_arguments(command)


def _add_pruning_arguments(command: argparse.ArgumentParser) -> None:
    """``pruning``'s flags: the relative test's fractions and the share it keeps."""
    command.add_argument(
        "--fractions",
        type=lambda text: [float(value) for value in _comma_list(text)],
        default=[0.2, 0.35, 0.5],
        help="the relative test: evaluate at these shares of the steps (default 0.2,0.35,0.5)",
    )
    command.add_argument(
        "--keep", type=float, default=0.5, help="the relative test: continue this share (default 0.5)"
    )


def _add_summary_arguments(command: argparse.ArgumentParser) -> None:
    """``summary``'s flags: what the summary's tests and scores use instead of the study's settings."""
    command.add_argument("--baseline", help="the recipe to test against (default: the study's)")
    command.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples")
    command.add_argument(
        "--target-score",
        type=float,
        help="how many runs are expected to reach it (default: the study's)",
    )
    command.add_argument(
        "--score",
        choices=SCORES,
        help="each run's final score, or its best evaluation during training (default: the study's, "
        "else final)",
    )


def _changes(spec: StudySpec, study_dir: Path, study_file: str) -> None:
    """What the study file now describes that the store does not hold: new runs, changed ones, dropped ones."""
    cells = {cell.run_id: cell for cell in spec.cells()}
    with StudyStore(study_dir / STORE_FILE) as store:
        rows = {run.run_id: run for run in store.runs()}
    new = [run_id for run_id in cells if run_id not in rows]
    changed = [
        run_id
        for run_id, run in rows.items()
        if run_id in cells and not cells[run_id].same_config(run.config_hash)
    ]
    dropped = [run_id for run_id in rows if run_id not in cells]
    if not (new or changed or dropped):
        return
    print(
        f"\nthe study file changed since the store was last run: {len(new)} new run(s), {len(changed)} with other "
        f"arguments, {len(dropped)} dropped; `{program_name()} run {study_file}` takes the new ones"
        + (" (and --rerun-changed the changed ones)" if changed else "")
    )
    for run_id in changed[:5]:
        print(f"  changed: {run_id}")


def _status(study_dir: Path) -> None:
    with StudyStore(study_dir / STORE_FILE) as store:
        counts, runs, name = (
            store.counts(),
            store.runs(),
            store.get_meta("spec", {}).get("name", study_dir.name),
        )
    print(f"[{name}] {counts.done}/{counts.total} runs done. {counts_line(counts)}")
    groups = list(dict.fromkeys((run.task, run.recipe) for run in runs))
    print(
        f"\n{'task':<12} {'recipe':<22} {'completed':>9} {'failed runs':>11} {'resumed':>7} {'errors':>6} "
        f"{'running':>7} {'pending':>7}"
    )
    for task, recipe in groups:
        chosen = [run for run in runs if run.task == task and run.recipe == recipe]

        def count(*statuses: str, chosen: list = chosen) -> int:
            return sum(run.status in statuses for run in chosen)

        failed = sum(bool(run.failed_run) for run in chosen if run.status == COMPLETED)
        resumed = sum(run.resumed_from_step is not None for run in chosen)
        print(
            f"{task:<12} {recipe:<22} {count(COMPLETED):>5}/{len(chosen):<3} {failed:>11} {resumed:>7} "
            f"{count(ERROR, CRASHED):>6} {count(RUNNING):>7} {count(PENDING):>7}"
        )
    problems = [run for run in runs if run.status in (ERROR, CRASHED)]
    if problems:
        print("\nruns that ended in an error (attempts so far; the last line of the message):")
        for run in problems:
            last = [line for line in (run.error or "").strip().splitlines() if line.strip()]
            print(f"  {run.run_id} [{run.status}, {run.attempts} attempt(s)]: {last[-1] if last else ''}")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and do it; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        argv, passthrough = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    options = _parser().parse_args(argv)
    if passthrough and options.command != "run":
        print(f"{program_name()}: error: fine-tune flags after `--` belong to `run`", file=sys.stderr)
        return 2
    interrupt_on_sigterm()
    try:
        if options.command == "run":
            return _run(options, passthrough)
        if options.command == "rebuild":
            rebuild_store(load_spec(options.study))
            return 0
        _read_store(options)
        return 0
    except (ValueError, OSError, RuntimeError) as error:
        print(f"{program_name()}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\n{program_name()}: interrupted; the store is consistent and unfinished runs are pending again: "
            "run the same command to resume",
            file=sys.stderr,
        )
        return 130


def _run(options: argparse.Namespace, passthrough: list[str]) -> int:
    """``run``: the study from its file and flags, executed; 1 when runs ended in an error."""
    spec = load_spec(options.study, _study_overrides(options, passthrough))
    counts = run_study(
        spec,
        _execution_options(options),
        retry=options.retry,
        rerun_changed=options.rerun_changed,
        stale_after_s=options.stale_after,
        report=not options.no_report,
    )
    failed = counts.error + counts.crashed
    if failed:
        print(
            f"{program_name()}: {failed} run(s) ended in an error; see `{program_name()} status "
            f"{spec.output_dir}`, fix the cause and run again (--retry for fresh attempts)",
            file=sys.stderr,
        )
        return 1
    return 0


def _study_overrides(options: argparse.Namespace, passthrough: list[str]) -> dict[str, Any]:
    """``run``'s flags as the study file's keys they override (``None``: not given, the file's stays)."""
    return {
        "name": options.name,
        "output_dir": options.output_dir,
        "tasks": options.tasks,
        "recipes": options.recipes,
        "seeds": options.seeds,
        "data_seeds": options.data_seeds,
        "dropout_seeds": options.dropout_seeds,
        "subset_seeds": options.subset_seeds,
        "baseline": options.baseline,
        "prune": options.prune,
        "restarts": None
        if options.restarts is None
        else {
            "successes": options.restarts,
            **({"max_runs": options.max_runs} if options.max_runs else {}),
        },
        "target_score": options.target_score,
        "until_decided": None if options.until_decided is None else {"round": options.until_decided},
        "arguments": _flags_to_arguments(passthrough) if passthrough else None,
    }


def _execution_options(options: argparse.Namespace) -> ExecutionOptions:
    """``run``'s execution flags as :class:`.run.backends.ExecutionOptions`."""
    return ExecutionOptions(
        backend=options.backend,
        workers=options.workers,
        runs_per_gpu=options.runs_per_gpu,
        isolation="in-process"
        if options.in_process
        else "forkserver"
        if options.fork_server
        else "subprocess",
        script=options.script,
        address=options.address,
        cpus_per_run=options.cpus_per_run,
        gpus_per_run=options.gpus_per_run,
        ray_num_cpus=options.ray_num_cpus,
        max_attempts=options.max_attempts,
        malloc_thresholds=not options.default_malloc,
        share_tokenized=not options.tokenize_each_run,
        batch_seeds=options.batch_seeds,
    )


def _read_store(options: argparse.Namespace) -> None:
    """``status``, ``summary``, ``pruning`` and ``plot``: what they say of the study's store."""
    study_dir = study_directory(options.study)
    if options.command == "status":
        _status(study_dir)
        if Path(options.study).suffix in (".yaml", ".yml", ".json"):
            _changes(load_spec(options.study), study_dir, options.study)
    elif options.command == "summary":
        for path in write_summary(
            study_dir,
            baseline=options.baseline,
            n_resamples=options.resamples,
            target_score=options.target_score,
            score=options.score,
        ):
            print(f"wrote {path}")
    elif options.command == "pruning":
        _pruning(study_dir, options.fractions, options.keep)
    elif options.command == "plot":
        paths = write_plots(study_dir)
        for path in paths:
            print(f"wrote {path}")
        if not paths:
            print("no completed run to plot yet")


def _pruning(study_dir: Path, fractions: list[float], keep: float) -> None:
    """``pruning``: per task, how well the early tests (and the relative test at ``fractions``) predict."""
    with StudyStore(study_dir / STORE_FILE) as store:
        runs = store.runs()
    for task in dict.fromkeys(run.task for run in runs):
        chosen = [run for run in runs if run.task == task]
        measured = measure_pruning(chosen) + measure_relative_pruning(chosen, fractions, keep)
        print(f"{task}:\n\n{render_pruning(measured)}\n")
