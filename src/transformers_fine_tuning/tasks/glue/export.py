"""Write GLUE tasks in the original distribution layout, build that layout from the Hub, and find it.

:func:`write_glue_dir` is the inverse of :func:`~transformers_fine_tuning.tasks.glue.files.load_glue_dir`, driven
only by the task table (:attr:`GlueTask.files`), so that a task taken from the Hub dataset ``nyu-mll/glue``
can be stored once and read offline afterwards, by the same reader as the files of GLUE's
``download_glue_data.py``. :func:`find_glue_dir` is the one place where tests and benchmarks look for the
data: ``TFT_GLUE_DIR``, then the paths the caller knows, then a per-user cache directory, which it can build
from the Hub.

Run as a module to build the layout from the Hub (on a machine with network access)::

    python -m transformers_fine_tuning.tasks.glue.export [TASK ...] [--output_dir DIR]

(``python -m transformers_fine_tuning.glue.export``, the old path, runs it too.)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from ...atomic import write_text_atomic
from ...hub import hub_endpoint, hub_offline, hub_unreachable
from .loading import load_hub_task
from .table import GlueFile, GlueTask, get_task

GLUE_DIR_ENV = "TFT_GLUE_DIR"
"""Environment variable naming a GLUE-layout directory; :func:`find_glue_dir` looks there first."""

CACHE_DIR_ENV = "TFT_CACHE_DIR"
"""Environment variable naming this library's cache directory; the GLUE layout is built in its ``glue/``."""

DEFAULT_TASKS = ("rte", "mrpc")
"""The tasks the tests and benchmarks use, and that the command line exports by default."""

_UNREPRESENTABLE = str.maketrans({"\t": " ", "\r": " ", "\n": " "})


def _clean_text(value: Any, where: str) -> str:
    """A text as it can stand in GLUE's unquoted TSV: tab, CR and LF each become one space."""
    if value is None:
        raise ValueError(f"{where}: the text is missing (None); a GLUE file cannot hold a missing text")
    return str(value).translate(_UNREPRESENTABLE)


def _format_label(task: GlueTask, value: Any, where: str) -> str:
    """A label as the task's files write it: ``task.file_labels[index]``, or the STS-B score.

    The score is written as the shortest decimal that reads back as the same ``float32`` (``3.8``, not
    ``3.799999952316284``): :func:`load_glue_dir` gives ``float32`` scores, so nothing is lost.
    """
    if task.file_labels is None:
        if value is None or not np.isfinite(value):
            raise ValueError(f"{where}: expected a finite score, found {value!r}")
        return str(np.float32(value))
    if not isinstance(value, (int, np.integer)) or not 0 <= value < len(task.file_labels):
        names = ", ".join(f"{index} = {name!r}" for index, name in enumerate(task.label_names))
        raise ValueError(
            f"{where}: label {value!r} cannot be written: expected a class index ({names}); unlabelled rows "
            "(-1) belong only in a test split"
        )
    return task.file_labels[int(value)]


def _header_and_positions(
    task: GlueTask, file: GlueFile
) -> tuple[list[str] | None, list[int], int | None, int]:
    """The header line (``None`` without one), the positions of the texts and label, the number of columns.

    With a header: the text columns, then the label column, named as the table names them. Without one:
    ``num_columns`` columns, texts and label at the table's indices.
    """
    if file.has_header:
        header = [str(name) for name in file.text_columns]
        if file.label_column is not None:
            header.append(str(file.label_column))
        label_index = None if file.label_column is None else len(file.text_columns)
        return header, list(range(len(file.text_columns))), label_index, len(header)
    if file.num_columns is None:
        raise ValueError(f"GLUE task {task.name!r}, {file.filename}: a header-less file needs num_columns")
    texts = [int(index) for index in file.text_columns]
    label = None if file.label_column is None else int(file.label_column)
    return None, texts, label, file.num_columns


def _glue_lines(task: GlueTask, file: GlueFile, split: Dataset, path: Path) -> list[str]:
    """The lines of ``file`` holding ``split``'s rows (``idx`` is not written: the reader numbers rows)."""
    missing = [column for column in task.text_columns if column not in split.column_names]
    if file.label_column is not None and "label" not in split.column_names:
        missing.append("label")
    if missing:
        raise ValueError(
            f"split {file.split!r} of GLUE task {task.name!r} lacks column(s) {missing}; found "
            f"{split.column_names}"
        )
    header, text_positions, label_position, num_columns = _header_and_positions(task, file)
    lines = [] if header is None else ["\t".join(header)]
    # whole columns as lists: indexing a datasets Column row by row reads Arrow once per row
    columns = {column: split[column][:] for column in task.text_columns}
    labels = split["label"][:] if label_position is not None else None
    for row in range(split.num_rows):
        where = f"{path}, split {file.split!r}, row {row}"
        fields = [""] * num_columns
        for column, position in zip(task.text_columns, text_positions, strict=True):
            fields[position] = _clean_text(columns[column][row], f"{where}, column {column!r}")
        if labels is not None and label_position is not None:
            fields[label_position] = _format_label(task, labels[row], where)
        if num_columns == 1 and not fields[0]:
            raise ValueError(f"{where}: an empty text in a one-column file would be an empty line, not a row")
        lines.append("\t".join(fields))
    return lines


def write_glue_dir(task: str | GlueTask, data: DatasetDict, directory: str | Path) -> Path:
    """Write ``data``'s splits as ``task``'s GLUE-distribution files under ``directory/<task.folder>/``.

    The inverse of :func:`load_glue_dir`, driven by :attr:`GlueTask.files` alone: each split present in
    ``data`` (Hub split names, Hub columns) becomes its file, tab-separated without quoting, UTF-8:

    * a file with a header names the text columns and then the label column as the table names them
      (MRPC: ``#1 String``, ``#2 String``, ``Quality``); a header-less file (CoLA train/dev) has
      ``num_columns`` columns, texts and label at the table's indices, the other columns empty;
    * labels are written as ``task.file_labels[label]`` (STS-B: the float score); test files have no label
      column, whatever ``data`` holds there; a labelled file refuses label ``-1``;
    * ``idx`` is not written: :func:`load_glue_dir` numbers the rows from 0 in file order, as the Hub does.

    Tabs, CR and LF inside a text cannot be represented in GLUE's unquoted TSV (they would split the row):
    each is replaced by one space. Each file is written atomically (a temporary file in the same folder,
    then ``os.replace``); files of splits not in ``data`` are left as they are. A split the task does not
    have raises ``ValueError``.

    Returns:
        The task's folder, ``directory/<task.folder>``.
    """
    task = get_task(task)
    files = [(task.file_for(split), dataset) for split, dataset in data.items()]
    task_dir = Path(directory) / task.folder
    task_dir.mkdir(parents=True, exist_ok=True)
    for file, dataset in files:
        path = task_dir / file.filename
        write_text_atomic(path, "".join(line + "\n" for line in _glue_lines(task, file, dataset, path)))
    return task_dir


def _as_tasks(tasks: str | GlueTask | Iterable[str | GlueTask]) -> list[GlueTask]:
    if isinstance(tasks, (str, GlueTask)):
        tasks = [tasks]
    return [get_task(task) for task in tasks]


def export_hub_glue(
    tasks: str | GlueTask | Iterable[str | GlueTask],
    directory: str | Path,
    *,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download each of ``tasks`` from the Hub (:func:`load_hub_task`), write it with :func:`write_glue_dir`.

    The result is the GLUE root layout (``directory/RTE/...``, ``directory/MRPC/...``) that
    :func:`load_glue_dir` and ``--data_dir`` read. ``cache_dir`` is the ``datasets`` cache of the download.
    A Hub that cannot be reached raises ``ConnectionError`` at once (:func:`~transformers_fine_tuning.hub.
    hub_unreachable`), not after huggingface_hub's half a minute of retries.

    Returns:
        ``directory``, the GLUE root.
    """
    directory = Path(directory)
    reason = None if hub_offline() else hub_unreachable()  # offline, datasets answers from its cache at once
    if reason is not None:
        raise ConnectionError(f"the Hugging Face Hub ({hub_endpoint()}) cannot be reached ({reason})")
    for task in _as_tasks(tasks):
        write_glue_dir(task, load_hub_task(task, cache_dir=cache_dir), directory)
    return directory


def _cache_dir() -> Path:
    """The GLUE cache: ``$TFT_CACHE_DIR/glue``, else under ``$XDG_CACHE_HOME``, else under ``~/.cache``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser() / "glue"
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "transformers-fine-tuning" / "glue"


def _missing_files(root: Path, tasks: Sequence[GlueTask]) -> list[Path]:
    """The train and evaluation files of ``tasks`` that the GLUE root ``root`` lacks (all of them if ``root``
    is not a directory).

    The file names come from the task table. Unlike :func:`resolve_task_dir`, which also accepts a task's
    folder itself as ``data_dir``, each task must be in its own folder ``root/<task.folder>``: callers get a
    GLUE root back, and a task folder would otherwise pass for every task, as all name their files
    ``train.tsv`` and ``dev.tsv``.
    """
    missing: list[Path] = []
    for task in tasks:
        task_dir = root / task.folder
        for split in ("train", *task.eval_splits):
            path = task_dir / task.file_for(split).filename
            if not path.is_file():
                missing.append(path)
    return missing


def find_glue_dir(
    candidates: Iterable[str | Path] = (),
    *,
    tasks: Sequence[str | GlueTask] = DEFAULT_TASKS,
    build: bool = False,
) -> Path | None:
    """The GLUE root holding ``tasks``' train and evaluation files, looked up in a fixed order.

    1. ``$TFT_GLUE_DIR``, if set and not empty. A setting that lacks any of the files raises
       ``FileNotFoundError`` naming the variable and the missing files: a wrong setting is not passed over.
    2. The first of ``candidates`` (paths the caller knows, e.g. the checkout's ``../shared/glue``) that
       holds every task's files.
    3. The cache directory (``$TFT_CACHE_DIR/glue``, else ``$XDG_CACHE_HOME/transformers-fine-tuning/glue``,
       else ``~/.cache/transformers-fine-tuning/glue``) if it holds them.
    4. With ``build=True``, that cache directory built from the Hub with :func:`export_hub_glue` (network
       needed; ``ConnectionError`` otherwise).

    A directory holds a task when ``<dir>/<task.folder>/`` has the task's train and evaluation files
    (:attr:`GlueTask.files`), i.e. when :func:`load_glue_dir` would find them; test files are optional.

    Returns:
        The GLUE root (holding ``RTE/``, ``MRPC/``...), or ``None`` when no place holds the data and
        ``build`` is false.
    """
    wanted = _as_tasks(tasks)
    setting = os.environ.get(GLUE_DIR_ENV)
    if setting:
        root = Path(setting).expanduser()
        missing = _missing_files(root, wanted)
        if missing:
            names = ", ".join(task.name for task in wanted)
            folders = ", ".join(f"{task.folder}/" for task in wanted)
            raise FileNotFoundError(
                f"{GLUE_DIR_ENV}={setting} does not hold the GLUE data of {names}: missing "
                f"{', '.join(map(str, missing))}. Point {GLUE_DIR_ENV} at a GLUE root holding {folders} in "
                "the layout of GLUE's download_glue_data.py, or unset it"
            )
        return root
    for candidate in candidates:
        root = Path(candidate).expanduser()
        if not _missing_files(root, wanted):
            return root
    cache = _cache_dir()
    if not _missing_files(cache, wanted):
        return cache
    if not build:
        return None
    export_hub_glue(wanted, cache)
    missing = _missing_files(cache, wanted)
    if missing:  # the Hub gave splits other than the table's
        raise FileNotFoundError(f"built {cache} from the Hub, but it lacks {', '.join(map(str, missing))}")
    return cache


def _how_else(output_dir: Path) -> str:
    return (
        f"to get the GLUE data otherwise, set {GLUE_DIR_ENV} to a GLUE-layout directory (the GLUE root "
        "holding RTE/, MRPC/...), or run `python -m transformers_fine_tuning.tasks.glue.export` on a machine with "
        f"network access and copy the directory it prints (here: {output_dir})"
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: build the GLUE layout of the given tasks from the Hub and print its directory.

    Exit status 2, with one line on stderr, when the Hub cannot be reached.
    """
    parser = argparse.ArgumentParser(
        prog="python -m transformers_fine_tuning.tasks.glue.export",
        description="Download GLUE tasks from the Hugging Face Hub (nyu-mll/glue) and write them in the "
        "original GLUE distribution layout (TSV files), for --data_dir and TFT_GLUE_DIR.",
    )
    parser.add_argument(
        "tasks", nargs="*", default=list(DEFAULT_TASKS), metavar="TASK", help="GLUE tasks (default: rte mrpc)"
    )
    parser.add_argument(
        "--output_dir", type=Path, default=None, help=f"the GLUE root to write (default: {_cache_dir()})"
    )
    args = parser.parse_args(argv)
    try:
        tasks = _as_tasks(args.tasks)
    except ValueError as error:
        parser.error(str(error))
    output_dir = args.output_dir if args.output_dir is not None else _cache_dir()

    try:
        export_hub_glue(tasks, output_dir)
    except (ConnectionError, TimeoutError) as error:
        message = f"could not load GLUE from the Hugging Face Hub ({_one_line(error.__cause__ or error)})"
        print(f"error: {message}; {_how_else(output_dir)}", file=sys.stderr)
        return 2
    print(output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
