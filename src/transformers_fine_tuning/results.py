"""The ``results.json`` of one fine-tuning run: what a seed study reads instead of scraping logs.

Written atomically (a temporary file in the same directory, flushed to disk, then renamed over the target),
so a reader never sees half a file and a crash never leaves a truncated one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["RESULTS_FILE", "device_info", "library_versions", "training_history", "write_json_atomic"]

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Plain JSON values: enums by value, dataclasses as dicts, non-finite floats as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    if hasattr(value, "item"):  # numpy / torch scalars
        return _jsonable(value.item())
    return str(value)


def write_json_atomic(path: str | Path, content: Mapping[str, Any]) -> Path:
    """Write ``content`` as JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(content), indent=2, allow_nan=False) + "\n"
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


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
    elif device.type == "cpu":
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    elif device.type == "xla":  # torch_xla is installed wherever an XLA device exists
        import torch_xla.core.xla_model as xm

        info["name"] = xm.xla_device_hw(device)  # "TPU", or "CPU" for torch_xla's CPU device (PJRT_DEVICE)
    return info


def training_history(log_history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the Trainer's ``state.log_history`` into training-loss entries and evaluation entries."""
    losses = [
        {key: entry[key] for key in ("step", "epoch", "loss", "learning_rate", "grad_norm") if key in entry}
        for entry in log_history
        if "loss" in entry
    ]
    evaluations = [entry for entry in log_history if any(key.startswith("eval_") for key in entry)]
    return losses, evaluations
