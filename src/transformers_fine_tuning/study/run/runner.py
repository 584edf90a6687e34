"""Execute one cell of a study: the fine-tune job with the cell's arguments, reduced to a :class:`RunOutcome`.

The job is the package's own (:mod:`transformers_fine_tuning.fine_tune`), or a script of the user's
(``--script``: a file that takes the job's flags, writes ``results.json`` into ``--output_dir`` and, for
in-process runs and the argument check, defines ``parse_fine_tune_args(argv)`` and ``run(args)`` as the job
does). Two ways to run, because they trade isolation for start-up time:

* ``subprocess`` (the default) — a fresh ``python -m transformers_fine_tuning.fine_tune ...`` (or ``python
  SCRIPT ...``) per run, its output in ``<run>/log.txt``. A run that crashes the interpreter, exhausts GPU
  memory or leaves CUDA in an error state takes nothing else with it, and the next run starts clean. Costs a
  few seconds of imports per run, nothing next to a real fine-tuning run.
* ``in-process`` — calls the job's ``run`` in the calling process: no start-up cost, for short runs (tests,
  tiny models on CPU). A hard crash ends the worker; the study's store notices
  (:meth:`~.store.StudyStore.reclaim_dead`) and the run is re-run on resume.

Either way, any exception of the run is caught and returned as an ``error`` outcome with its message, so one
bad run never stops the others. A run whose directory already holds a ``results.json`` made with the same
configuration (the process was killed after writing it but before the store heard of it) is ingested
instead of re-run: nothing finished is lost. A run cut off after writing checkpoints resumes from the last
complete one (the job's own resumption); a run whose configuration changed starts over.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ...results import RESULTS_FILE, RunResults, read_results, write_json_atomic
from .environment import CAN_DIE_WITH_PARENT, die_with_parent
from .forkserver import run_forked
from .spec import RunCell

__all__ = [
    "ISOLATIONS",
    "RunOutcome",
    "execute_group",
    "execute_run",
    "find_script",
    "finished_results",
    "load_job",
    "validate_cells",
]

ISOLATIONS = ("subprocess", "forkserver", "in-process")
JOB_MODULE = "transformers_fine_tuning.fine_tune"
MARKER_FILE = "study-run.json"
LOG_FILE = "log.txt"
_ERROR_TAIL_CHARS = 4000


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run: ``completed`` with its results, or ``error`` with the message."""

    run_id: str
    status: str
    results: RunResults | None
    error: str | None
    wall_time_s: float
    host: str


def find_script(script: str | Path) -> Path:
    """The user's own fine-tune script, as an absolute path.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(script).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"fine-tune script {path} does not exist; leave --script out to run the package's own job"
        )
    return path


_SCRIPTS: dict[Path, ModuleType] = {}


def load_job(script: str | Path | None = None) -> ModuleType:
    """The job as a module: the package's :mod:`~transformers_fine_tuning.fine_tune`, or ``script`` imported
    from its path (once per process), for in-process runs and argument checks."""
    if script is None:
        return importlib.import_module(JOB_MODULE)
    path = find_script(script)
    if path not in _SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"_fine_tune_script_{len(_SCRIPTS)}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name in ("parse_fine_tune_args", "run"):
            if not callable(getattr(module, name, None)):
                raise ValueError(
                    f"{path} defines no {name}(); a study script must define parse_fine_tune_args(argv) and "
                    f"run(args) as {JOB_MODULE} does"
                )
        _SCRIPTS[path] = module
    return _SCRIPTS[path]


def validate_cells(cells: list[RunCell], script: str | Path | None = None) -> None:
    """Parse the arguments of one cell per task × recipe with the job's own parser, before any run.

    An unknown flag or conflicting options would otherwise surface as the same error in every run, hours in.

    Raises:
        ValueError: the first cell whose arguments the job rejects, named with the reason.
    """
    module = load_job(script)
    checked: set[tuple[str, str]] = set()
    for cell in cells:
        if (cell.task, cell.recipe) in checked:
            continue
        checked.add((cell.task, cell.recipe))
        try:
            module.parse_fine_tune_args(cell.fine_tune_argv())
        except SystemExit:  # argparse has printed the reason (an unknown or malformed flag)
            raise ValueError(
                f"fine-tune rejects the arguments of {cell.run_id} (see above): {' '.join(cell.argv)}"
            ) from None
        except (ValueError, OSError) as error:
            raise ValueError(f"fine-tune rejects the arguments of {cell.run_id}: {error}") from None


def _marker(cell: RunCell) -> dict[str, Any] | None:
    try:
        return json.loads((Path(cell.output_dir) / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None


def finished_results(cell: RunCell) -> RunResults | None:
    """The results of an earlier attempt of this very configuration, if it finished."""
    marker = _marker(cell)
    if marker is None or not cell.same_config(marker.get("config_hash")):
        return None
    try:
        results = read_results(Path(cell.output_dir) / RESULTS_FILE)
    except (OSError, ValueError):
        return None
    return results if results.status == "completed" else None  # an interrupted run resumes


def _run_subprocess(
    cell: RunCell,
    argv: list[str],
    script: Path | None,
    env: Mapping[str, str] | None,
    *,
    forked: bool = False,
) -> str | None:
    """Run the job for the cell in a fresh process (``forked``: a child of the fork server, :mod:`.forkserver`);
    ``None`` on success, else the error text (its log's tail)."""
    log_path = Path(cell.output_dir) / LOG_FILE
    if forked:
        returncode = run_forked(JOB_MODULE, argv, log_path, env, INTERRUPT_GRACE_S)
    else:
        command = [sys.executable, *(["-m", JOB_MODULE] if script is None else [str(script)]), *argv]
        returncode = _run_logged(command, log_path, env)
    if returncode == 0:
        return None
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-_ERROR_TAIL_CHARS:]
    reason = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    return f"fine-tune ended with {reason}; the end of {log_path}:\n{tail}"


def _run_logged(command: list[str], log_path: Path, env: Mapping[str, str] | None) -> int:
    """Run ``command`` in a fresh process, its output appended to ``log_path``; its exit status."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent if CAN_DIE_WITH_PARENT else None,
            start_new_session=True,  # a terminal's Ctrl-C reaches the study, which passes it on once
        )
        try:
            return process.wait()
        except BaseException:  # interrupted: the run checkpoints at its next step boundary, then stops
            _stop(process)
            raise


INTERRUPT_GRACE_S = 120.0
"""How long an interrupted study waits for its run to save a checkpoint and stop, before it kills the run."""


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the run (which saves a resumable checkpoint at its next step boundary), then wait for it;
    kill it after :data:`INTERRUPT_GRACE_S`, or at once on a second interrupt."""
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=INTERRUPT_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.kill()
        process.wait()


def _run_in_process(argv: list[str], script: Path | None) -> str | None:
    """Run the job's ``run`` in this process; ``None`` on success, else the traceback."""
    module = load_job(script)
    trainer = None
    try:
        args = module.parse_fine_tune_args(argv)
        trainer, _ = module.run(args)
    except (Exception, SystemExit):  # SystemExit: argparse rejecting a flag
        return traceback.format_exc()[-_ERROR_TAIL_CHARS:]
    finally:
        del trainer
        gc.collect()
        if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
            sys.modules["torch"].cuda.empty_cache()
    return None


def execute_run(
    cell: RunCell,
    *,
    isolation: str = "subprocess",
    script: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    tokenized_cache_dir: str | Path | None = None,
) -> RunOutcome:
    """Run one cell and return its outcome; never raises for a failing run (only for ``KeyboardInterrupt``).

    An earlier attempt of the same configuration that left checkpoints is resumed from the last complete one
    (``results.json`` then records ``resumed_from``); after a change of configuration the run starts over.

    Args:
        cell: the run.
        isolation: ``subprocess`` or ``in-process`` (see the module docstring).
        script: a fine-tune script of your own (default: the package's job).
        env: environment variables for the run (subprocess isolation only; e.g. ``OMP_NUM_THREADS``).
        tokenized_cache_dir: the study's shared tokenised copies (``--tokenized_cache_dir`` of the package's
            job; a script of your own gets the flag only if its study arguments name it).
    """
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
    start, host = time.perf_counter(), platform.node()
    recovered = finished_results(cell)
    if recovered is not None:
        return RunOutcome(cell.run_id, "completed", recovered, None, time.perf_counter() - start, host)
    try:
        script_path = None if script is None else find_script(script)
        argv = _start_attempt(cell, tokenized_cache_dir if script_path is None else None)
        if isolation == "subprocess" or (isolation == "forkserver" and script_path is not None):
            error = _run_subprocess(cell, argv, script_path, env)
        elif isolation == "forkserver":
            error = _run_subprocess(cell, argv, script_path, env, forked=True)
        else:
            error = _run_in_process(argv, script_path)
    except (OSError, ValueError) as exception:  # the run directory could not be read/written
        error = f"{type(exception).__name__}: {exception}"
    return _outcome(cell, error, time.perf_counter() - start, host)


def _start_attempt(cell: RunCell, tokenized_cache_dir: str | Path | None) -> list[str]:
    """Make the run's directory ready for an attempt and return the job's arguments for it."""
    directory = Path(cell.output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    marker = _marker(cell)
    argv = cell.fine_tune_argv()
    if tokenized_cache_dir is not None:
        argv += ["--tokenized_cache_dir", str(tokenized_cache_dir)]
    if marker is not None and not cell.same_config(marker.get("config_hash")):
        argv += ["--resume_from_checkpoint", "false"]  # checkpoints of another configuration
    # results of another configuration must not pass for this one's if this attempt dies half-way
    (directory / RESULTS_FILE).unlink(missing_ok=True)
    write_json_atomic(
        directory / MARKER_FILE,
        {"run_id": cell.run_id, "config_hash": cell.config_hash, "argv": cell.fine_tune_argv()},
    )
    return argv


def _outcome(cell: RunCell, error: str | None, wall_time_s: float, host: str) -> RunOutcome:
    """The attempt's outcome: ``completed`` with the results it wrote, else ``error``."""
    if error is None:
        try:
            results = read_results(Path(cell.output_dir) / RESULTS_FILE)
        except (OSError, ValueError) as exception:
            error = f"{type(exception).__name__}: {exception}"
    if error is not None:
        return RunOutcome(cell.run_id, "error", None, error, wall_time_s, host)
    return RunOutcome(cell.run_id, "completed", results, None, wall_time_s, host)


BATCHED_MODULE = "transformers_fine_tuning.batched"
BATCHED_JOB = "transformers_fine_tuning.batched.job"
GROUP_FILE = "batched-group.json"


def execute_group(
    cells: list[RunCell],
    *,
    isolation: str = "subprocess",
    env: Mapping[str, str] | None = None,
    tokenized_cache_dir: str | Path | None = None,
) -> list[RunOutcome]:
    """Run seeds of one recipe together (:mod:`...batched`) in one fresh process; one outcome per cell.

    Cells that finished in an earlier attempt are ingested, as :func:`execute_run` does. If the batched job
    refuses the runs (exit status 3: a technique it cannot batch, named in the log), each runs singly instead
    and its log says so. ``isolation``: ``subprocess`` or ``forkserver`` (a child of the fork server). Each outcome's wall time is the group's, shared by its runs.
    """
    start, host = time.perf_counter(), platform.node()
    outcomes = {
        cell.run_id: RunOutcome(cell.run_id, "completed", r, None, 0.0, host)
        for cell in cells
        if (r := finished_results(cell)) is not None
    }
    todo = [cell for cell in cells if cell.run_id not in outcomes]
    if len(todo) == 1:
        outcomes[todo[0].run_id] = execute_run(
            todo[0], isolation=isolation, env=env, tokenized_cache_dir=tokenized_cache_dir
        )
    elif todo:
        try:
            argvs = [_start_attempt(cell, tokenized_cache_dir) for cell in todo]
            group_file = Path(todo[0].output_dir) / GROUP_FILE
            write_json_atomic(group_file, {"argvs": argvs})
            error, refused = _run_group(todo, group_file, env, forked=isolation == "forkserver")
        except (OSError, ValueError) as exception:
            error, refused = f"{type(exception).__name__}: {exception}", False
        if refused:  # not batchable: the runs go one by one, as without the option
            for cell in todo:
                outcomes[cell.run_id] = execute_run(
                    cell, isolation=isolation, env=env, tokenized_cache_dir=tokenized_cache_dir
                )
        else:
            wall_time_s = (time.perf_counter() - start) / len(todo)
            for cell in todo:
                outcomes[cell.run_id] = _outcome(cell, error, wall_time_s, host)
    return [outcomes[cell.run_id] for cell in cells]


def _run_group(
    cells: list[RunCell], group_file: Path, env: Mapping[str, str] | None, *, forked: bool = False
) -> tuple[str | None, bool]:
    """The batched job for ``cells`` in a fresh process, logged to the first cell's log (the others' logs point
    there); the error text or ``None``, and whether the job refused to batch these runs."""
    from ...batched.job import REFUSED_EXIT_STATUS  # here: the worker process itself need not import the job

    log_path = Path(cells[0].output_dir) / LOG_FILE
    if forked:
        returncode = run_forked(BATCHED_JOB, ["--group", str(group_file)], log_path, env, INTERRUPT_GRACE_S)
    else:
        returncode = _run_logged(
            [sys.executable, "-m", BATCHED_MODULE, "--group", str(group_file)], log_path, env
        )
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-_ERROR_TAIL_CHARS:]
    refused = returncode == REFUSED_EXIT_STATUS
    why = next((line for line in reversed(tail.splitlines()) if "cannot be trained batched" in line), "")
    for cell in cells[1:] if not refused else cells:
        with open(Path(cell.output_dir) / LOG_FILE, "a", encoding="utf-8") as log:
            if refused:
                log.write(f"{why}\nso each runs singly\n")
            else:
                log.write(
                    f"trained batched with {', '.join(c.run_id for c in cells)}; the log is {log_path}\n"
                )
    if returncode == 0 or refused:
        return None, refused
    reason = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    return f"batched fine-tune ended with {reason}; the end of {log_path}:\n{tail}", False
