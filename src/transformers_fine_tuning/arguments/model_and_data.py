"""Which pretrained model, and which task and data (GLUE, your files, a Hub data set), tokenised how."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..tasks import (
    CLASSIFICATION_METRICS,
    CUSTOM_DATA_ARGUMENTS,
    DATA_SOURCE_ARGUMENTS,
    REGRESSION_METRICS,
    check_task_source,
    task_name_from_data,
)
from .ranges import check_ranges


@dataclass
class ModelArguments:
    """Which pretrained model and tokenizer to fine-tune."""

    model_name_or_path: str = field(
        default="albert-large-v2",
        metadata={
            "help": "Hub model id, or a local directory with config.json, the weights and the tokenizer."
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer id or directory, if not the model's own."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})


@dataclass
class DataArguments:
    """Which task and data to train and evaluate on, and how to tokenise it."""

    task_name: str | None = field(
        default=None,
        metadata={
            "help": "A GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli), or the name of a task of "
            "your own data (--dataset_name, or --train_file and --validation_file). Default: rte; with data of "
            "your own, a name taken from it (the data set's, or the training file's)."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Directory in GLUE's distribution layout (the GLUE root or the task's folder)."},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "CSV/TSV/JSON training file (a GLUE task's Hub columns, or your own data's), or a "
            "directory written by Dataset.save_to_disk."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "CSV/TSV/JSON validation file, or a Dataset.save_to_disk directory."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Your own data: a Hub data set (offline: from the datasets cache), a local folder of data "
            "files (train.csv, validation.csv, ...), or a directory written by DatasetDict.save_to_disk."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "With --dataset_name: the Hub data set's configuration."}
    )
    validation_split_name: str | None = field(
        default=None,
        metadata={"help": "With --dataset_name: the split to evaluate on (default: validation)."},
    )
    text_column: str | None = field(
        default=None,
        metadata={
            "help": "Your own data: the text column. Default: sentence1 and sentence2 when both exist, else the "
            "first two string columns other than the label (or the only one)."
        },
    )
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Your own data: the second text of a pair (with --text_column)."}
    )
    label_column: str | None = field(
        default=None,
        metadata={
            "help": "Your own data: the label column (default: label). Names or integers are classes, floats "
            "a regression target."
        },
    )
    main_metric: str | None = field(
        default=None,
        metadata={
            "help": "The metric that decides a failed run and that studies compare. Default: the GLUE task's; "
            "your own data: accuracy (classification), pearson (regression). Classification: accuracy, f1 "
            "(two classes: F1 of the second label), f1_macro, matthews_correlation; regression: pearson, "
            "spearmanr."
        },
    )
    extra_metrics: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated metrics reported beside the task's own, e.g. matthews_correlation."
        },
    )
    max_seq_length: int = field(
        default=128,
        metadata={"help": "Maximum tokens per example after tokenisation; longer ones are truncated."},
    )
    pad_to_max_length: bool | None = field(
        default=None,
        metadata={
            "help": "Pad every example to max_seq_length. Default: only on XLA (TPU), where static shapes "
            "avoid recompilation; elsewhere batches are padded dynamically to their longest example."
        },
    )
    sort_eval_by_length: bool = field(
        default=True,
        metadata={
            "help": "Evaluate each split longest example first, so a batch is padded to examples of its own "
            "length: cheaper, with the same metrics, and predictions stored in the split's own order. "
            "No effect with --pad_to_max_length."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training examples."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N examples of each evaluation split."}
    )
    train_subset_seed: int | None = field(
        default=None,
        metadata={
            "help": "With --max_train_samples N: train on N examples drawn at random with this seed instead of "
            "the first N (a study can hold the subset fixed or vary it)."
        },
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes for tokenisation."}
    )
    tokenized_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Keep the tokenised splits in this directory, one Arrow file per split named by what decides "
            "it (the split's data, the tokenizer's files, --max_seq_length, padding), and load them from there "
            "in later runs. A study sets it to <study>/tokenized, so that only its first run tokenises."
        },
    )

    def __post_init__(self) -> None:
        check_ranges(
            ("--max_seq_length", self.max_seq_length, self.max_seq_length >= 1, ">= 1"),
            *(
                (flag, value, value is None or value >= 1, ">= 1 (leave it out for all examples)")
                for flag, value in (
                    ("--max_train_samples", self.max_train_samples),
                    ("--max_eval_samples", self.max_eval_samples),
                )
            ),
            (
                "--preprocessing_num_workers",
                self.preprocessing_num_workers,
                self.preprocessing_num_workers is None or self.preprocessing_num_workers >= 1,
                ">= 1",
            ),
        )
        if self.train_subset_seed is not None and self.max_train_samples is None:
            raise ValueError(
                "--train_subset_seed draws a subset of --max_train_samples examples: give that too."
            )
        own_data = (
            self.dataset_name is not None or self.train_file is not None or self.validation_file is not None
        )
        if self.task_name is None:  # resolved here, so results.json and the checkpoints' arguments record it
            self.task_name = (
                task_name_from_data(
                    train_file=self.train_file or self.validation_file,
                    dataset_name=self.dataset_name,
                    dataset_config_name=self.dataset_config_name,
                )
                if own_data and self.data_dir is None
                else "rte"
            )
        given = {*DATA_SOURCE_ARGUMENTS, *CUSTOM_DATA_ARGUMENTS}
        check_task_source(self.task_name, [name for name in given if getattr(self, name) is not None])
        known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
        metrics = [*([self.main_metric] if self.main_metric else []), *self.extra_metric_names]
        unknown = [name for name in metrics if name not in known]
        if unknown:
            raise ValueError(
                f"--main_metric/--extra_metrics: unknown metric(s) {unknown}; the metrics are {', '.join(known)}"
            )

    @property
    def extra_metric_names(self) -> tuple[str, ...]:
        """``--extra_metrics`` as a tuple of names."""
        return tuple(name.strip() for name in (self.extra_metrics or "").split(",") if name.strip())
