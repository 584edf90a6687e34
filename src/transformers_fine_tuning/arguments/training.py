"""``TrainingArguments`` with the reference experiments' defaults, and every group of a run together."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from transformers import TrainingArguments
from transformers.training_args import OptimizerNames
from transformers.utils import is_torch_xla_available

from ..recipes import Recipe
from .fine_tuning import ADAMW_L2SP, FineTuningArguments
from .model_and_data import DataArguments, ModelArguments
from .ranges import check_ranges
from .run import DiagnosticsArguments, RunArguments

# The Trainer's default --optim is torch's fused AdamW (torch >= 2.8), which has no XLA kernel: its first step
# fails with "`fused=True` requires all the params to be floating point Tensors of supported devices".
_DEFAULT_OPTIM = (
    "adamw_torch" if is_torch_xla_available() else getattr(TrainingArguments.optim, "value", "adamw_torch")
)


@dataclass
class FineTuneTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the reference experiments' defaults."""

    output_dir: str | None = field(
        default="outputs/fine-tune", metadata={"help": "Where results.json (and any checkpoint) is written."}
    )
    per_device_train_batch_size: int = field(
        default=16, metadata={"help": "Batch size per device for training."}
    )
    per_device_eval_batch_size: int = field(
        default=64, metadata={"help": "Batch size per device for evaluation."}
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate η."})
    dropout_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the random draws during training (dropout, Mixout masks). Default: --seed, which "
            "then decides the head's initialisation and the masks together."
        },
    )
    warmup_steps: float = field(
        default=0.1, metadata={"help": "Warm-up: a number of steps, or below 1 a share of all steps."}
    )
    adam_epsilon: float = field(default=1e-6, metadata={"help": "Adam's ε."})
    optim: str = field(
        default=_DEFAULT_OPTIM,
        metadata={
            "choices": [ADAMW_L2SP, *(name.value for name in OptimizerNames)],
            "help": f"The optimizer: {ADAMW_L2SP} (AdamWL2SP: L2-SP, BERTAdam's uncorrected moments, the "
            "fused kernel where it exists), or one of the Trainer's. Default: the Trainer's, except on XLA, "
            "where torch's fused AdamW cannot run: adamw_torch.",
        },
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: no, steps or epoch."})
    save_strategy: str = field(
        default="no", metadata={"help": "When to save checkpoints: no, steps, epoch or best."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    report_to: str | None = field(
        default="none", metadata={"help": "Integrations to report to (tensorboard, ...)."}
    )
    dataloader_pin_memory: bool = field(
        default=not is_torch_xla_available(),
        metadata={
            "help": "Pin the batches' host memory. Default: on, except on XLA, which has no use for it."
        },
    )

    def __post_init__(self) -> None:
        # TrainingArguments knows only the Trainer's optimizers; AdamWL2SP is given to the Trainer explicitly
        # (optimizer_cls_and_kwargs), so the Trainer's own optim setting is never used then.
        check_ranges(
            ("--learning_rate", self.learning_rate, self.learning_rate >= 0, ">= 0"),
            *(
                (flag, value, value >= 1, ">= 1")
                for flag, value in (
                    ("--per_device_train_batch_size", self.per_device_train_batch_size),
                    ("--per_device_eval_batch_size", self.per_device_eval_batch_size),
                    ("--gradient_accumulation_steps", self.gradient_accumulation_steps),
                )
            ),
            (
                "--num_train_epochs",
                self.num_train_epochs,
                self.num_train_epochs > 0 or self.max_steps > 0,
                "> 0",
            ),
            (
                "--max_steps",
                self.max_steps,
                self.max_steps == -1 or self.max_steps >= 1,
                ">= 1 (or -1: by epochs)",
            ),
            (
                "--warmup_steps",
                self.warmup_steps,
                self.warmup_steps >= 0,
                ">= 0 (a count, or below 1 a share)",
            ),
            ("--weight_decay", self.weight_decay, self.weight_decay >= 0, ">= 0"),
            ("--adam_epsilon", self.adam_epsilon, self.adam_epsilon > 0, "> 0"),
            ("--adam_beta1", self.adam_beta1, 0 <= self.adam_beta1 < 1, "in [0, 1)"),
            ("--adam_beta2", self.adam_beta2, 0 <= self.adam_beta2 < 1, "in [0, 1)"),
            (
                "--max_grad_norm",
                self.max_grad_norm,
                self.max_grad_norm is None or self.max_grad_norm >= 0,
                ">= 0",
            ),
            ("--logging_steps", self.logging_steps, self.logging_steps > 0, "> 0"),
            ("--eval_steps", self.eval_steps, self.eval_steps is None or self.eval_steps > 0, "> 0"),
            ("--save_steps", self.save_steps, self.save_steps > 0, "> 0"),
        )
        self.adamw_l2sp = str(self.optim) == ADAMW_L2SP
        if self.adamw_l2sp:
            self.optim = "adamw_torch"
        super().__post_init__()

    def to_dict(self) -> dict[str, Any]:
        """The Trainer's dict, with ``optim`` as given: ``adamw_l2sp`` where AdamWL2SP is used."""
        values = super().to_dict()
        if self.adamw_l2sp:
            values["optim"] = ADAMW_L2SP
        return values


class FineTuneArguments(NamedTuple):
    """Every argument of a fine-tune run, by group, and the recipe whose values were applied."""

    model: ModelArguments
    data: DataArguments
    fine_tuning: FineTuningArguments
    diagnostics: DiagnosticsArguments
    run: RunArguments
    training: FineTuneTrainingArguments
    recipe: Recipe | None

    def to_dict(self) -> dict[str, Any]:
        """The arguments as plain values by group, as ``results.json`` records them."""
        groups = ("model", "data", "fine_tuning", "diagnostics", "run")
        return {**{name: asdict(getattr(self, name)) for name in groups}, "training": self.training.to_dict()}
