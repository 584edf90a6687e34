"""One data file, CSV, TSV (no quoting, as GLUE's files), JSON or JSON lines, as a ``Dataset``: what a GLUE task
read from files (:mod:`.glue.loading`) and a task of your own data (:mod:`.custom`) share."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset
from datasets.exceptions import DatasetGenerationError

from ..textfiles import check_text_file

__all__ = ["is_missing", "read_table"]

# File extension -> (datasets packaged builder, its options). TSV is read without quoting, as GLUE files are.
_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}


def read_table(path: str | Path, *, cache_dir: str | Path | None = None, directories: str = "") -> Dataset:
    """One CSV, TSV (no quoting, as GLUE's files), JSON or JSON-lines file as a ``Dataset`` of its own columns,
    read by the ``datasets`` packaged builders (types inferred, as ``load_dataset`` infers them).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file type not in the list; ``directories`` (e.g. "or data_dir for a GLUE-layout
            directory") ends the message with the caller's other way in.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    builder = _BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(_BUILDERS)}"
            + (f", {directories}" if directories else "")
        )
    check_text_file(path)
    name, options = builder
    try:
        table = datasets.load_dataset(
            name, data_files=str(path), split="train", cache_dir=cache_dir, **options
        )
    except (DatasetGenerationError, ValueError) as error:  # "corresponds to no data", a malformed row, ...
        cause = error.__cause__ or error
        reason = " ".join(str(cause).split())[:300] or type(cause).__name__
        if "corresponds to no data" in reason or "no data" in reason:
            raise ValueError(f"{path} holds no rows (at most a header): a split needs examples") from None
        raise ValueError(f"{path}: cannot be read as {name.upper()} ({reason})") from None
    if table.num_rows == 0:
        raise ValueError(f"{path} holds no rows (at most a header): a split needs examples")
    return table


def is_missing(value: Any) -> bool:
    """Whether a value read from a data file is empty: ``None``, or NaN (an empty CSV cell read as a number)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
