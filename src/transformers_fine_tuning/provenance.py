"""Where a run ran and with what: the device in words a reader of the results understands, and the versions of
Python and the libraries that decide a run's numbers; both recorded in ``results.json`` (:mod:`.results`).
"""

from __future__ import annotations

import logging
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_has_native_bf16", "cpu_model", "device_info", "library_versions", "warn_if_bf16_is_emulated"]

logger = logging.getLogger(__name__)

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 instructions that compute in bf16 (Cooper Lake, Sapphire Rapids and later Xeons; Zen 4 and later EPYCs)."""


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of Linux's ``/proc/cpuinfo``; empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    entries = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        entries[key.strip()] = value.strip()
    return entries


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU has bf16 instructions (``avx512_bf16`` or ``amx_bf16``), so that bf16 autocast can be
    faster than fp32 (BENCHMARKS.md section 8); ``None`` where the flags cannot be read (not Linux)."""
    flags = _cpuinfo().get("flags")
    return None if flags is None else any(flag in flags.split() for flag in _BF16_FLAGS)


def warn_if_bf16_is_emulated(device: torch.device, bf16: bool) -> None:
    """Warn when ``--bf16`` asks for bf16 autocast on a CPU that has no bf16 instructions: the matmuls then convert
    to and from fp32 around fp32 arithmetic, so the run computes in lower precision at no gain in speed."""
    if bf16 and device.type == "cpu" and cpu_has_native_bf16() is False:
        logger.warning(
            "--bf16 on a CPU without bf16 instructions (%s has neither %s): autocast emulates bf16 here, so "
            "expect no speed-up over fp32, only its lower precision; leave --bf16 off on this machine",
            cpu_model(),
            " nor ".join(_BF16_FLAGS),
        )


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that decide a run's numbers."""
    versions = {"python": platform.python_version()}
    for name in ("transformers-fine-tuning", "torch", "transformers", "datasets", "accelerate", "torch_xla"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_info(device: torch.device, world_size: int) -> dict[str, Any]:
    """The device a run trained on, in words a reader of the results understands."""
    info: dict[str, Any] = {"type": device.type, "world_size": world_size, "host": platform.node()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        # what a study needs to place several runs on one GPU (--runs-per-gpu): this run's peak and the total
        info["memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
        info["peak_memory_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
    elif device.type == "cpu":
        info["name"] = cpu_model()
        info["threads"] = torch.get_num_threads()
        info["native_bf16"] = cpu_has_native_bf16()
        # glibc's allocator settings change CPU step times by ~10 % (a study fixes them for its CPU runs)
        info["malloc_env"] = {key: value for key, value in os.environ.items() if key.startswith("MALLOC_")}
    elif device.type == "xla":  # torch_xla is installed wherever an XLA device exists
        import torch_xla.core.xla_model as xm

        info["name"] = xm.xla_device_hw(device)  # "TPU", or "CPU" for torch_xla's CPU device (PJRT_DEVICE)
    return info
