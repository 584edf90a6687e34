"""What a study's run processes see of the machine: which GPUs, and glibc's allocator settings on CPU.

A study owns the environment of the processes it starts, so it can set there what a user would otherwise
have to remember to export:

* ``CUDA_VISIBLE_DEVICES`` — the local backend gives each worker its GPU (:func:`visible_gpus` lists them).
* glibc's malloc thresholds (:data:`MALLOC_THRESHOLDS`) for runs on CPU. By default glibc moves its mmap
  threshold with the history of the heap, so that whether a step's gradient and optimizer buffers are
  mmap'ed (and faulted in afresh, and given back to the kernel, every step) depends on what the process
  allocated before: BENCHMARKS.md (Trainer overhead) measured 6–11 % faster CPU steps with fixed thresholds,
  at the cost of the process keeping its peak heap instead of trimming it. A GPU run's host allocations are
  small, so GPU runs are left as they are, and a value the user exported wins.
* ``TORCHINDUCTOR_CACHE_DIR`` — ``torch.compile``'s cache in the study's directory
  (:func:`compile_cache_environment`): inductor's default, ``/tmp/torchinductor_<user>``, is shared by one
  machine's processes but not by a cluster's nodes, and a cleaned ``/tmp`` costs every run its compilation again
  (47 s cold against 5.5 s warm for MiniLM's first step on one core, BENCHMARKS.md section 8).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

from .spec import COMPILE_CACHE_DIR

__all__ = [
    "CAN_DIE_WITH_PARENT",
    "MALLOC_THRESHOLDS",
    "compile_cache_environment",
    "cpu_run_environment",
    "die_with_parent",
    "visible_gpus",
]

MALLOC_THRESHOLDS = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30)}
"""Fixed glibc thresholds: allocations below 32 MiB come from the heap, which is trimmed only above 16 GiB."""


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device for device in visible.split(",") if device.strip() and device.strip() != "-1"]
    try:
        import torch

        return [str(index) for index in range(torch.cuda.device_count())]
    except Exception:  # no torch build with CUDA, no driver
        return []


def cpu_run_environment(malloc_thresholds: bool = True) -> dict[str, str]:
    """Variables to add to the environment of a run on CPU: the fixed malloc thresholds (Linux, glibc), except
    those the user has set in this process's environment. Empty when ``malloc_thresholds`` is false."""
    if not malloc_thresholds or not sys.platform.startswith("linux"):
        return {}
    if any(key in os.environ for key in MALLOC_THRESHOLDS):  # the user tunes the allocator: leave it be
        return {}
    return dict(MALLOC_THRESHOLDS)


def compile_cache_environment(store_path: str | Path) -> dict[str, str]:
    """Variables to add to the environment of a study's runs so that their ``torch.compile`` cache is the study's
    own (:data:`.spec.COMPILE_CACHE_DIR` beside the store); empty when the user exported their own."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return {}
    return {"TORCHINDUCTOR_CACHE_DIR": str(Path(store_path).resolve().parent / COMPILE_CACHE_DIR)}


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


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL when its parent dies, so a killed study leaves no run training on."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


CAN_DIE_WITH_PARENT = _PRCTL is not None
"""Whether :func:`die_with_parent` can ask for it here (Linux)."""
