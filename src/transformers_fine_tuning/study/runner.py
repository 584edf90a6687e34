"""Execute one cell of a study: ``fine-tune.py`` with the cell's arguments, reduced to a :class:`RunOutcome`.

Two ways to run, because they trade isolation for start-up time:

* ``subprocess`` (the default) — a fresh ``python fine-tune.py ...`` per run, its output in
  ``<run>/log.txt``. A run that crashes the interpreter, exhausts GPU memory or leaves CUDA in an error state
  takes nothing else with it, and the next run starts clean. Costs a few seconds of imports per run, nothing
  next to a real fine-tuning run.
* ``in-process`` — imports ``fine-tune.py`` once and calls its ``run`` in the calling process: no start-up
  cost, for short runs (tests, tiny models on CPU). A hard crash ends the worker; the study's store notices
  (:meth:`~.store.StudyStore.reclaim_dead`) and the run is re-run on resume.

Either way, any exception of the run is caught and returned as an ``error`` outcome with its message, so one
bad run never stops the others. A run whose directory already holds a ``results.json`` made with the same
configuration (the process was killed after writing it but before the store heard of it) is ingested
instead of re-run: nothing finished is lost.
"""

from __future__ import annotations

import ctypes
import gc
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

from ..results import RESULTS_FILE, write_json_atomic
from .spec import RunCell

__all__ = ["ISOLATIONS", "RunOutcome", "execute_run", "find_script", "validate_cells"]

ISOLATIONS = ("subprocess", "in-process")
MARKER_FILE = "study-run.json"
LOG_FILE = "log.txt"
_ERROR_TAIL_CHARS = 4000


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run: ``completed`` with its results, or ``error`` with the message."""

    run_id: str
    status: str
    results: dict[str, Any] | None
    error: str | None
    wall_time_s: float
    host: str


def find_script(script: str | Path | None = None) -> Path:
    """The ``fine-tune.py`` to run: ``script`` if given, else the one at the root of this project checkout.

    Raises:
        FileNotFoundError: no such file (e.g. the package is installed without the project checkout).
    """
    if script is not None:
        path = Path(script).expanduser().resolve()
    else:  # src/transformers_fine_tuning/study/runner.py -> the project root
        path = Path(__file__).resolve().parents[3] / "fine-tune.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"fine-tune.py not found at {path}; pass --script /path/to/fine-tune.py (the project's script)"
        )
    return path


_SCRIPTS: dict[Path, ModuleType] = {}


def load_script(script: str | Path | None = None) -> ModuleType:
    """Import ``fine-tune.py`` as a module (once per process), for in-process runs and argument checks."""
    path = find_script(script)
    if path not in _SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"_fine_tune_script_{len(_SCRIPTS)}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPTS[path] = module
    return _SCRIPTS[path]


def validate_cells(cells: list[RunCell], script: str | Path | None = None) -> None:
    """Parse the arguments of one cell per task × recipe with ``fine-tune.py``'s own parser, before any run.

    An unknown flag or conflicting options would otherwise surface as the same error in every run, hours in.

    Raises:
        ValueError: the first cell whose arguments ``fine-tune.py`` rejects, named with the reason.
    """
    module = load_script(script)
    checked: set[tuple[str, str]] = set()
    for cell in cells:
        if (cell.task, cell.recipe) in checked:
            continue
        checked.add((cell.task, cell.recipe))
        try:
            module.parse_fine_tune_args(cell.fine_tune_argv())
        except SystemExit:  # argparse has printed the reason (an unknown or malformed flag)
            raise ValueError(
                f"fine-tune.py rejects the arguments of {cell.run_id} (see above): {' '.join(cell.argv)}"
            ) from None
        except (ValueError, OSError) as error:
            raise ValueError(f"fine-tune.py rejects the arguments of {cell.run_id}: {error}") from None


def _existing_results(cell: RunCell) -> dict[str, Any] | None:
    """The results of an earlier attempt of this very configuration, if it finished."""
    directory = Path(cell.output_dir)
    try:
        marker = json.loads((directory / MARKER_FILE).read_text())
        if marker.get("config_hash") != cell.config_hash:
            return None
        return json.loads((directory / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _resolve_prctl():
    """libc's ``prctl``, looked up here in the parent: the child between fork and exec must not import."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _resolve_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL when its parent dies, so a killed study leaves no run training on."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_subprocess(cell: RunCell, script: Path, env: Mapping[str, str] | None) -> str | None:
    """Run ``python fine-tune.py`` for the cell; ``None`` on success, else the error text (tail of the log)."""
    log_path = Path(cell.output_dir) / LOG_FILE
    command = [sys.executable, str(script), *cell.fine_tune_argv()]
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        try:
            returncode = process.wait()
        except BaseException:  # interrupted: stop the run with the study
            process.kill()
            process.wait()
            raise
    if returncode == 0:
        return None
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-_ERROR_TAIL_CHARS:]
    reason = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    return f"fine-tune.py ended with {reason}; the end of {log_path}:\n{tail}"


def _run_in_process(cell: RunCell, script: Path) -> str | None:
    """Run ``fine-tune.py``'s ``run`` in this process; ``None`` on success, else the traceback."""
    module = load_script(script)
    trainer = None
    try:
        args = module.parse_fine_tune_args(cell.fine_tune_argv())
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
) -> RunOutcome:
    """Run one cell and return its outcome; never raises for a failing run (only for ``KeyboardInterrupt``).

    Args:
        cell: the run.
        isolation: ``subprocess`` or ``in-process`` (see the module docstring).
        script: the ``fine-tune.py`` to run (default: the project's).
        env: environment variables for the run (subprocess isolation only; e.g. ``OMP_NUM_THREADS``).
    """
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
    start, host = time.perf_counter(), platform.node()
    recovered = _existing_results(cell)
    if recovered is not None:
        return RunOutcome(cell.run_id, "completed", recovered, None, time.perf_counter() - start, host)
    try:
        script_path = find_script(script)
        Path(cell.output_dir).mkdir(parents=True, exist_ok=True)
        # results of another configuration must not pass for this one's if this attempt dies half-way
        (Path(cell.output_dir) / RESULTS_FILE).unlink(missing_ok=True)
        write_json_atomic(
            Path(cell.output_dir) / MARKER_FILE,
            {"run_id": cell.run_id, "config_hash": cell.config_hash, "argv": cell.fine_tune_argv()},
        )
        if isolation == "subprocess":
            error = _run_subprocess(cell, script_path, env)
        else:
            error = _run_in_process(cell, script_path)
        if error is None:
            results = json.loads((Path(cell.output_dir) / RESULTS_FILE).read_text())
    except (OSError, ValueError) as exception:  # the run directory or its results could not be read/written
        error = f"{type(exception).__name__}: {exception}"
    wall_time_s = time.perf_counter() - start
    if error is not None:
        return RunOutcome(cell.run_id, "error", None, error, wall_time_s, host)
    return RunOutcome(cell.run_id, "completed", results, None, wall_time_s, host)
