"""Where a run ran and with what: the device in words a reader of the results understands, and the versions of
Python and the libraries that decide a run's numbers; both recorded in ``results.json`` (:mod:`.results`).
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import torch

__all__ = ["device_info", "library_versions"]


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
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
        # glibc's allocator settings change CPU step times by ~10 % (a study fixes them for its CPU runs)
        info["malloc_env"] = {key: value for key, value in os.environ.items() if key.startswith("MALLOC_")}
    elif device.type == "xla":  # torch_xla is installed wherever an XLA device exists
        import torch_xla.core.xla_model as xm

        info["name"] = xm.xla_device_hw(device)  # "TPU", or "CPU" for torch_xla's CPU device (PJRT_DEVICE)
    return info
