"""Runs started from a fork server that has the job imported: each run a fresh child, without the imports' cost.

A run in a fresh ``python -m transformers_fine_tuning.fine_tune`` spends seconds importing torch, transformers and
datasets before it does anything. With ``isolation="forkserver"`` a worker starts one server process (Python's
``multiprocessing`` fork server, its preload the job's module) the first time it runs something, and each run is a
child forked from it: the imports are paid once per worker, and each run still has a process of its own, so a crash,
an exhausted memory or a CUDA error takes nothing else with it. The server never runs anything itself (no thread
pools, no CUDA context), so forking it is safe.

The server starts with the runs' environment (``OMP_NUM_THREADS``, the malloc thresholds, which glibc reads at
start-up), taken from the first run's; the child redirects its output to the run's log, leaves the terminal's
session (as the ``subprocess`` isolation does: a Ctrl-C reaches the study, which passes it on once) and asks to die
with its parent.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from .environment import die_with_parent

__all__ = ["run_forked"]

PRELOAD = ("transformers_fine_tuning.fine_tune", "transformers_fine_tuning.batched.job")
"""What the server imports once: the job, and the batched job (the job's imports and ``torch.func``)."""

_SERVER: multiprocessing.context.ForkServerContext | None = None


def _context(env: Mapping[str, str]) -> multiprocessing.context.ForkServerContext:
    """This process's fork server context, started (on first use) with :data:`PRELOAD` imported and ``env`` set."""
    global _SERVER
    if _SERVER is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # the server process inherits the environment it starts with
        try:
            context.Process(target=_noop).start()  # starts the server now, in this environment
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        _SERVER = context
    return _SERVER


def _noop() -> None:
    """The first child: starting it starts the server."""


def run_forked(
    module: str, argv: list[str], log_path: Path, env: Mapping[str, str] | None, grace_s: float
) -> int:
    """Run ``module``'s ``main(argv)`` in a child of the fork server, its output appended to ``log_path``; its exit
    status (negative: the signal that ended it). Interrupted, the child gets SIGTERM (it checkpoints and stops), and
    SIGKILL after ``grace_s`` or on a second interrupt."""
    context = _context(dict(env or {}))
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"fork server ({module}) {' '.join(argv)}\n\n")
    process = context.Process(target=_child, args=(module, argv, str(log_path), dict(env or {})))
    process.start()
    try:
        process.join()
    except BaseException:
        try:
            process.terminate()
            process.join(grace_s)
        except KeyboardInterrupt:
            pass
        if process.exitcode is None:
            process.kill()
            process.join()
        raise
    return process.exitcode if process.exitcode is not None else -signal.SIGKILL


def _child(module: str, argv: list[str], log_path: str, env: dict[str, str]) -> None:  # pragma: no cover
    """In the forked child: the run's environment, its log as stdout and stderr, its own session, then the job."""
    import importlib

    os.setsid()
    die_with_parent()
    os.environ.update(env)
    if "OMP_NUM_THREADS" in env:
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    descriptor = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(descriptor, 1), os.dup2(descriptor, 2)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the server ignores it; the job handles it
    sys.argv = [module.rsplit(".", 1)[-1] + ".py", *argv]  # how the job names itself in its messages
    status = importlib.import_module(module).main(argv)
    sys.stdout.flush(), sys.stderr.flush()
    sys.exit(status)
