"""Tokenise a task once, before training: a GLUE task, or any :class:`~.tasks.Task` (one of your own data).

Single sentences or sentence pairs are taken from the task's text columns and truncated to
``max_seq_length`` tokens. Padding is left to ``DataCollatorWithPadding`` (per batch, to the longest
sequence), unless padding to ``max_seq_length`` is asked for, e.g. for TPUs that need static shapes.
"""

from __future__ import annotations

import logging

from datasets import DatasetDict
from transformers import PreTrainedTokenizerBase

from .tasks import Task, get_task

logger = logging.getLogger(__name__)


def tokenize_dataset(
    dataset_dict: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    task: str | Task,
    *,
    max_seq_length: int = 128,
    pad_to_max_length: bool = False,
    num_proc: int | None = None,
) -> DatasetDict:
    """Tokenise every split of ``dataset_dict`` (batched ``Dataset.map``) and drop the raw text columns.

    The result keeps ``label`` (which ``Trainer`` passes to the model as ``labels``) and ``idx``, and adds
    the tokenizer's outputs (``input_ids``, ``attention_mask``, and ``token_type_ids`` where the model uses
    them). A ``max_seq_length`` longer than the tokenizer's ``model_max_length`` is lowered to it, with a
    warning, as Hugging Face's ``run_glue.py`` does.
    """
    task = get_task(task)
    text_columns = list(task.text_columns)
    for split, dataset in dataset_dict.items():
        missing = [column for column in text_columns if column not in dataset.column_names]
        if missing:
            raise ValueError(
                f"split {split!r} lacks the text column(s) {missing} of task {task.name!r}; it has "
                f"{dataset.column_names} (load a GLUE task with load_task_datasets to get the Hub's column names)"
            )
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

    return dataset_dict.map(
        tokenize, batched=True, num_proc=num_proc, remove_columns=text_columns, desc=f"Tokenizing {task.name}"
    )
