"""The arguments of the fine-tune job, the Hugging Face way: dataclasses parsed by ``HfArgumentParser``.

Every ``TrainingArguments`` option is a flag, and a JSON or YAML file works in place of flags
(``tft-fine-tune config.yaml``). ``--recipe NAME`` (or a ``recipe:`` key in the file) supplies the
values of a named recipe; flags and file keys given explicitly override it.

The defaults reproduce the reference experiments: ALBERT (``albert-large-v2``) on RTE, batch 16, learning
rate 2e-5 with a linear schedule and 10 % warm-up, Adam ε 1e-6 and β (0.9, 0.999), gradient clipping 1.0,
3 epochs, evaluation after every epoch, no step checkpoints.
"""

from .fine_tuning import ADAMW_L2SP, FineTuningArguments
from .model_and_data import DataArguments, ModelArguments
from .parsing import parse_fine_tune_args, xla_launch_requested
from .ranges import check_ranges
from .run import DiagnosticsArguments, RunArguments
from .training import FineTuneArguments, FineTuneTrainingArguments

__all__ = [
    "ADAMW_L2SP",
    "DataArguments",
    "DiagnosticsArguments",
    "FineTuneArguments",
    "FineTuneTrainingArguments",
    "FineTuningArguments",
    "ModelArguments",
    "RunArguments",
    "check_ranges",
    "parse_fine_tune_args",
    "xla_launch_requested",
]
