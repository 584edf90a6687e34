"""Tokenise a task once, before training: a GLUE task, or any :class:`~.base.Task` (one of your own data).

Single sentences or sentence pairs are taken from the task's text columns and truncated to
``max_seq_length`` tokens. Padding is left to ``DataCollatorWithPadding`` (per batch, to the longest
sequence), unless padding to ``max_seq_length`` is asked for, e.g. for TPUs that need static shapes.

Given a ``cache_dir``, each tokenised split is kept there as an Arrow file whose name is a hash of everything
that decides its contents, and a later call with the same inputs (another run of a study) loads that file
instead of tokenising again.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

from datasets import DatasetDict
from transformers import PreTrainedTokenizerBase

from .base import Task
from .glue.table import get_task

logger = logging.getLogger(__name__)


def tokenize_dataset(
    dataset_dict: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    task: str | Task,
    *,
    max_seq_length: int = 128,
    pad_to_max_length: bool = False,
    num_proc: int | None = None,
    cache_dir: str | Path | None = None,
) -> DatasetDict:
    """Tokenise every split of ``dataset_dict`` (batched ``Dataset.map``) and drop the raw text columns.

    The result keeps ``label`` (which ``Trainer`` passes to the model as ``labels``) and ``idx``, and adds
    the tokenizer's outputs (``input_ids``, ``attention_mask``, and ``token_type_ids`` where the model uses
    them). A ``max_seq_length`` longer than the tokenizer's ``model_max_length`` is lowered to it, with a
    warning, as Hugging Face's ``run_glue.py`` does.

    ``cache_dir``: keep each tokenised split in this directory and load it from there when the same split
    (``datasets``' content fingerprint), tokenizer (the bytes of its saved files), task columns, length and
    padding come again; concurrent runs may both write a file, each atomically (``datasets`` renames a
    temporary file into place), so a reader never sees a partial one.
    """
    task = get_task(task)
    text_columns = list(task.text_columns)
    _check_text_columns(dataset_dict, task)
    if max_seq_length > tokenizer.model_max_length:
        logger.warning(
            "max_seq_length %d is longer than the tokenizer's model_max_length %d; using %d",
            max_seq_length,
            tokenizer.model_max_length,
            tokenizer.model_max_length,
        )
        max_seq_length = tokenizer.model_max_length

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(
            *(batch[column] for column in text_columns),
            truncation=True,
            max_length=max_seq_length,
            padding="max_length" if pad_to_max_length else False,
        )

    cache_file_names = None
    if cache_dir is not None:
        settings = f"{tokenizer_digest(tokenizer)}|{text_columns}|{max_seq_length}|{pad_to_max_length}"
        cache_file_names = _cache_file_names(dataset_dict, task, Path(cache_dir), settings)
    return dataset_dict.map(
        tokenize,
        batched=True,
        num_proc=num_proc,
        remove_columns=text_columns,
        cache_file_names=cache_file_names,
        desc=f"Tokenizing {task.name}",
    )


def _check_text_columns(dataset_dict: DatasetDict, task: Task) -> None:
    """Every split has the task's text columns, or a ``ValueError`` names the split and what it lacks."""
    for split, dataset in dataset_dict.items():
        missing = [column for column in task.text_columns if column not in dataset.column_names]
        if missing:
            raise ValueError(
                f"split {split!r} lacks the text column(s) {missing} of task {task.name!r}; it has "
                f"{dataset.column_names} (load a GLUE task with load_task_datasets to get the Hub's column names)"
            )


def _cache_file_names(
    dataset_dict: DatasetDict, task: Task, cache_dir: Path, settings: str
) -> dict[str, str]:
    """Each split's cache file in ``cache_dir`` (created), named by a hash of its content and ``settings``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    return {
        split: str(cache_dir / f"{task.name}-{split}-{_digest(dataset._fingerprint, settings)}.arrow")
        for split, dataset in dataset_dict.items()
    }


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the files ``save_pretrained`` writes for ``tokenizer``: equal for tokenizers that tokenise alike,
    whichever path or Hub id they came from (tens of milliseconds, once per run). A fast tokenizer that has
    already been called with truncation or padding saves those settings too, so it hashes differently from a
    fresh one: a cache miss, never a wrong hit."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
