"""The arguments of the fine-tune job, the Hugging Face way: dataclasses parsed by ``HfArgumentParser``.

Every ``TrainingArguments`` option is a flag, and a JSON or YAML file works in place of flags
(``tft-fine-tune config.yaml``). ``--recipe NAME`` (or a ``recipe:`` key in the file) supplies the
values of a named recipe; flags and file keys given explicitly override it.

The defaults reproduce the reference experiments: ALBERT (``albert-large-v2``) on RTE, batch 16, learning
rate 2e-5 with a linear schedule and 10 % warm-up, Adam ε 1e-6 and β (0.9, 0.999), gradient clipping 1.0,
3 epochs, evaluation after every epoch, no step checkpoints.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from torch import nn
from transformers import HfArgumentParser, PreTrainedModel, TrainerCallback, TrainingArguments
from transformers.training_args import OptimizerNames
from transformers.utils import is_torch_xla_available

from .adapters import PEFT_INSTALL, apply_lora, peft_available
from .callbacks import (
    EMACallback,
    FineTuningCallback,
    FreezeCallback,
    GradualUnfreezingCallback,
    L2SPCallback,
    LLRDCallback,
    LPFTCallback,
    MixoutCallback,
    NoisyTuneCallback,
    R3FCallback,
    ReinitCallback,
    SWACallback,
    WiSEFTCallback,
)
from .data import CUSTOM_DATA_ARGUMENTS, DATA_SOURCE_ARGUMENTS, check_task_source, task_name_from_data
from .diagnostics import (
    DevFailureCallback,
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
)
from .glue.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from .optim import AdamWL2SP
from .recipes import Recipe, load_recipe
from .results import PRUNING_TESTS
from .textfiles import read_mapping_file

__all__ = [
    "DataArguments",
    "DiagnosticsArguments",
    "FineTuneArguments",
    "FineTuneTrainingArguments",
    "FineTuningArguments",
    "ModelArguments",
    "RunArguments",
    "parse_fine_tune_args",
    "xla_launch_requested",
]


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


def check_ranges(*checks: tuple[str, Any, bool, str]) -> None:
    """Refuse the first ``(flag, value, ok, requirement)`` that is not ``ok``, in the user's terms:
    ``--learning_rate -1.0: must be >= 0``. Checked when the arguments are parsed, before anything is loaded."""
    for flag, value, ok, requirement in checks:
        if not ok:
            raise ValueError(f"{flag} {value}: must be {requirement}.")


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


def _named(callback: FineTuningCallback, option: str) -> FineTuningCallback:
    """``callback``, named in messages by the flag that asked for it."""
    callback.option = option
    return callback


@dataclass
class FineTuningArguments:
    """The stabilising techniques, each one argument away."""

    bias_correction: bool = field(
        default=True,
        metadata={"help": "Adam's bias correction; false gives BERTAdam (needs --optim adamw_l2sp)."},
    )
    l2sp_pretrained: float = field(
        default=0.0, metadata={"help": "L2-SP strength λ_sp pulling pretrained weights toward their values."}
    )
    l2sp_head_weight_decay: float = field(
        default=0.0,
        metadata={"help": "With L2-SP: weight decay toward zero of the new head (and re-init layers)."},
    )
    l2sp_coupled: bool = field(
        default=False,
        metadata={"help": "Add the L2-SP gradient before Adam's moments instead of decoupling it."},
    )
    l2sp_selective: bool = field(
        default=False,
        metadata={
            "help": "Selective Projection Decay (Tian et al. 2024) instead of the pull at every step: a tensor "
            "moving away from its pretrained value along its gradient is projected back; --l2sp_pretrained is "
            "its λ in (0, 1]."
        },
    )
    reinit_layers: int = field(default=0, metadata={"help": "Re-initialise the top N encoder layers."})
    reinit_pooler: bool = field(
        default=True, metadata={"help": "With --reinit_layers: re-initialise the pooler too."}
    )
    layer_decay: float | None = field(
        default=None, metadata={"help": "Layer-wise learning-rate decay ξ in (0, 1]."}
    )
    layer_decay_floor: float | None = field(
        default=None,
        metadata={"help": "With --layer_decay: the lowest learning-rate scale a depth gets, in (0, 1]."},
    )
    layer_decay_freeze_below: float | None = field(
        default=None,
        metadata={
            "help": "With --layer_decay: freeze the depths whose scale is below this, in (0, 1] (out of the "
            "optimizer instead of a learning rate of ~0)."
        },
    )
    freeze_layers: int = field(default=0, metadata={"help": "Freeze the bottom N encoder layers."})
    freeze_embeddings: bool = field(default=False, metadata={"help": "Freeze the embeddings."})
    mixout: float = field(
        default=0.0, metadata={"help": "Mixout probability p toward the pretrained weights."}
    )
    lora_r: int = field(
        default=0,
        metadata={
            "help": "LoRA rank r (Hu et al. 2022): train rank-r adapters of the attention's query and value "
            "projections and the new head, the pretrained weights frozen; 0 (the default): full fine-tuning. "
            f"Needs {PEFT_INSTALL}."
        },
    )
    lora_alpha: float | None = field(
        default=None, metadata={"help": "With --lora_r: LoRA's α, the update scaled by α/r (default α = r)."}
    )
    lora_dropout: float = field(
        default=0.0, metadata={"help": "With --lora_r: dropout on the adapters' input."}
    )
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "With --lora_r: comma-separated names of the Linear modules to adapt (default: the "
            "attention's query and value projections of the model's family)."
        },
    )
    noisytune: float = field(
        default=0.0,
        metadata={
            "help": "NoisyTune (Wu et al. 2022, Eq. 1): before training, add uniform noise U(-λ/2, λ/2)·std(W) "
            "to every pretrained matrix W, drawn with --seed; this is λ (0.15 in the paper); 0: off."
        },
    )
    ema_decay: float | None = field(
        default=None,
        metadata={
            "help": "Keep an exponential moving average of the weights (bias-corrected) with this decay in "
            "(0, 1); evaluate with it and end training with it (see --weight_average_eval)."
        },
    )
    ema_half_life: float | None = field(
        default=None,
        metadata={
            "help": "The EMA by its half-life instead of --ema_decay: in steps, or below 1 a share of all steps."
        },
    )
    swa_start: float | None = field(
        default=None,
        metadata={
            "help": "Stochastic weight averaging (Izmailov et al. 2018): the uniform average of the weights after "
            "this many steps (below 1: a share of all steps; 0.75 in the paper); evaluate and end with it."
        },
    )
    swa_every: int = field(default=1, metadata={"help": "With --swa_start: average every N optimizer steps."})
    weight_average_eval: bool = field(
        default=True,
        metadata={
            "help": "With --ema_decay, --ema_half_life or --swa_start: evaluate with the averaged weights and end "
            "training with them (the final metrics and the saved model are the average's); false: the "
            "average is only kept, in the checkpoints."
        },
    )
    r3f_lambda: float = field(
        default=0.0,
        metadata={
            "help": "R3F (Aghajanyan et al. 2021, Eq. 3): add λ times the symmetric KL between the predictions on "
            "the input embeddings and on noisy ones to the loss (a second forward pass per step); this is λ "
            "(1.0 in the authors' code); 0: off."
        },
    )
    r3f_eps: float = field(default=1e-5, metadata={"help": "With --r3f_lambda: the noise scale σ."})
    r3f_noise: str = field(
        default="normal",
        metadata={"help": "With --r3f_lambda: N(0, σ²) or U(-σ, σ) noise.", "choices": ["normal", "uniform"]},
    )
    wise_ft_alpha: float | None = field(
        default=None,
        metadata={
            "help": "WiSE-FT (Wortsman et al. 2022, Eq. 1): after training, θ = (1 − α)·θ₀ + α·θ for the "
            "pretrained weights, with this α in [0, 1] (1: the fine-tuned model)."
        },
    )
    wise_ft_alphas: str | None = field(
        default=None,
        metadata={
            "help": "WiSE-FT with α chosen from this comma-separated grid (e.g. 0,0.25,0.5,0.75,1) by the main "
            "metric on training data held out for it (--wise_ft_held_out), never on the validation split."
        },
    )
    wise_ft_held_out: float | None = field(
        default=None,
        metadata={
            "help": "With --wise_ft_alphas: the share of the training split set aside (not trained on) to "
            "choose α (default 0.1)."
        },
    )
    best_held_out: float | None = field(
        default=None,
        metadata={
            "help": "The share of the training split set aside (not trained on) and evaluated at every evaluation "
            "to choose the run's best evaluation, reported beside the final one (results.json 'best')."
        },
    )
    best_held_out_seed: int = field(
        default=0, metadata={"help": "With --best_held_out: the seed that draws the held-out examples."}
    )
    wise_ft_held_out_seed: int = field(
        default=0,
        metadata={
            "help": "With --wise_ft_alphas: the seed that draws the held-out examples (fixed across --seed)."
        },
    )
    lp_ft_head_steps: float | None = field(
        default=None,
        metadata={
            "help": "LP-FT (Kumar et al. 2022): train the new head alone for this many optimizer steps (below 1: a "
            "share of the run), then everything."
        },
    )
    lp_ft_head_lr: float | None = field(
        default=None, metadata={"help": "With --lp_ft_head_steps: the head's learning rate during the probe."}
    )
    gradual_unfreeze: float | None = field(
        default=None,
        metadata={
            "help": "Gradual unfreezing (Howard & Ruder 2018): the head first, then one more depth from the top "
            "every this many optimizer steps (below 1: a share of the run)."
        },
    )
    unfreeze_warmup: float = field(
        default=0.0,
        metadata={
            "help": "With --lp_ft_head_steps or --gradual_unfreeze: the warm-up of each group that thaws, in steps "
            "(below 1: a share of the run)."
        },
    )

    def __post_init__(self) -> None:
        check_ranges(
            ("--reinit_layers", self.reinit_layers, self.reinit_layers >= 0, ">= 0"),
            ("--freeze_layers", self.freeze_layers, self.freeze_layers >= 0, ">= 0"),
            ("--l2sp_pretrained", self.l2sp_pretrained, self.l2sp_pretrained >= 0, ">= 0"),
            (
                "--l2sp_head_weight_decay",
                self.l2sp_head_weight_decay,
                self.l2sp_head_weight_decay >= 0,
                ">= 0",
            ),
            (
                "--layer_decay",
                self.layer_decay,
                self.layer_decay is None or 0 < self.layer_decay <= 1,
                "in (0, 1]",
            ),
            ("--mixout", self.mixout, 0 <= self.mixout < 1, "in [0, 1)"),
        )
        check_ranges(
            *(
                (flag, value, value is None or value > 0, "> 0")
                for flag, value in (
                    ("--lp_ft_head_steps", self.lp_ft_head_steps),
                    ("--lp_ft_head_lr", self.lp_ft_head_lr),
                    ("--gradual_unfreeze", self.gradual_unfreeze),
                )
            ),
            ("--unfreeze_warmup", self.unfreeze_warmup, self.unfreeze_warmup >= 0, ">= 0"),
        )
        check_ranges(
            *(
                (flag, value, value is None or 0 < value <= 1, "in (0, 1]")
                for flag, value in (
                    ("--layer_decay_floor", self.layer_decay_floor),
                    ("--layer_decay_freeze_below", self.layer_decay_freeze_below),
                )
            )
        )
        check_ranges(
            ("--noisytune", self.noisytune, self.noisytune >= 0, ">= 0"),
            ("--ema_decay", self.ema_decay, self.ema_decay is None or 0 < self.ema_decay < 1, "in (0, 1)"),
            (
                "--ema_half_life",
                self.ema_half_life,
                self.ema_half_life is None or self.ema_half_life > 0,
                "> 0",
            ),
            ("--swa_start", self.swa_start, self.swa_start is None or self.swa_start >= 0, ">= 0"),
            ("--swa_every", self.swa_every, self.swa_every >= 1, ">= 1"),
            ("--r3f_lambda", self.r3f_lambda, self.r3f_lambda >= 0, ">= 0"),
            ("--r3f_eps", self.r3f_eps, self.r3f_eps > 0, "> 0"),
            (
                "--wise_ft_alpha",
                self.wise_ft_alpha,
                self.wise_ft_alpha is None or 0 <= self.wise_ft_alpha <= 1,
                "in [0, 1]",
            ),
            (
                "--wise_ft_held_out",
                self.wise_ft_held_out,
                self.wise_ft_held_out is None or 0 < self.wise_ft_held_out < 1,
                "in (0, 1)",
            ),
            (
                "--best_held_out",
                self.best_held_out,
                self.best_held_out is None or 0 < self.best_held_out < 1,
                "in (0, 1)",
            ),
        )

    def check(self, adamw_l2sp: bool) -> None:
        """Reject option combinations that cannot do what they say; ``adamw_l2sp``: ``--optim adamw_l2sp``."""
        if not adamw_l2sp:
            needs = [
                flag
                for flag, used in (
                    ("--l2sp_pretrained", self.l2sp_pretrained > 0),
                    ("--l2sp_coupled", self.l2sp_coupled),
                    ("--l2sp_selective", self.l2sp_selective),
                    ("--bias_correction false", not self.bias_correction),
                )
                if used
            ]
            if needs:
                raise ValueError(f"{' and '.join(needs)} need(s) --optim {ADAMW_L2SP}.")
        if self.l2sp_selective and (self.l2sp_coupled or not 0 < self.l2sp_pretrained <= 1):
            raise ValueError(
                "--l2sp_selective applies Selective Projection Decay with --l2sp_pretrained as its λ in (0, 1], "
                f"got {self.l2sp_pretrained:g}"
                + (" and --l2sp_coupled (another form of the pull: give one)." if self.l2sp_coupled else ".")
            )
        if self.l2sp_head_weight_decay > 0 and self.l2sp_pretrained == 0:
            raise ValueError(
                "--l2sp_head_weight_decay applies with L2-SP only: set --l2sp_pretrained too, or use "
                "--weight_decay."
            )
        self._check_lora()
        self._check_stabilizers()

    @property
    def wise_ft_grid(self) -> list[float] | None:
        """``--wise_ft_alphas`` as numbers (``None`` without it).

        Raises:
            ValueError: a value that is not a number in [0, 1], or an empty grid.
        """
        if self.wise_ft_alphas is None:
            return None
        try:
            grid = [float(value) for value in self.wise_ft_alphas.split(",") if value.strip()]
        except ValueError:
            grid = []
        if not grid or not all(0.0 <= value <= 1.0 for value in grid):
            raise ValueError(
                f"--wise_ft_alphas {self.wise_ft_alphas}: must be comma-separated numbers in [0, 1], e.g. 0,0.5,1."
            )
        return grid

    @property
    def wise_ft_held_out_share(self) -> float | None:
        """The share of the training split held out to choose WiSE-FT's α (``None``: nothing is held out)."""
        if self.wise_ft_alphas is None:
            return None
        return 0.1 if self.wise_ft_held_out is None else self.wise_ft_held_out

    def _check_stabilizers(self) -> None:
        """NoisyTune's, weight averaging's, R3F's and WiSE-FT's flags: given together where they must be, one
        weight average, not with adapters where they make no sense."""
        averages = [
            flag
            for flag, used in (
                ("--ema_decay", self.ema_decay is not None),
                ("--ema_half_life", self.ema_half_life is not None),
                ("--swa_start", self.swa_start is not None),
            )
            if used
        ]
        if len(averages) > 1:
            raise ValueError(f"{' and '.join(averages)}: one weight average at a time; give one of them.")
        if self.best_held_out is not None and self.wise_ft_alphas is not None:
            raise ValueError(
                "--best_held_out and --wise_ft_alphas each hold out part of the training data; give one of them "
                "(WiSE-FT's α is already chosen on its own held-out split)."
            )
        if self.lp_ft_head_steps is not None and self.gradual_unfreeze is not None:
            raise ValueError(
                "--lp_ft_head_steps and --gradual_unfreeze: one unfreezing schedule at a time; give one of them."
            )
        alone = [
            (flag, needs)
            for flag, used, needs in (
                ("--swa_every", self.swa_every != 1 and self.swa_start is None, "--swa_start"),
                (
                    "--weight_average_eval false",
                    not self.weight_average_eval and not averages,
                    "a weight average",
                ),
                ("--r3f_eps", self.r3f_eps != 1e-5 and self.r3f_lambda == 0, "--r3f_lambda"),
                ("--r3f_noise", self.r3f_noise != "normal" and self.r3f_lambda == 0, "--r3f_lambda"),
                (
                    "--wise_ft_held_out",
                    self.wise_ft_held_out is not None and self.wise_ft_alphas is None,
                    "--wise_ft_alphas",
                ),
                (
                    "--layer_decay_floor",
                    self.layer_decay_floor is not None and self.layer_decay is None,
                    "--layer_decay",
                ),
                (
                    "--lp_ft_head_lr",
                    self.lp_ft_head_lr is not None and self.lp_ft_head_steps is None,
                    "--lp_ft_head_steps",
                ),
                (
                    "--unfreeze_warmup",
                    self.unfreeze_warmup > 0
                    and self.lp_ft_head_steps is None
                    and self.gradual_unfreeze is None,
                    "--lp_ft_head_steps or --gradual_unfreeze",
                ),
                (
                    "--layer_decay_freeze_below",
                    self.layer_decay_freeze_below is not None and self.layer_decay is None,
                    "--layer_decay",
                ),
                (
                    "--wise_ft_held_out_seed",
                    self.wise_ft_held_out_seed != 0 and self.wise_ft_alphas is None,
                    "--wise_ft_alphas",
                ),
            )
            if used
        ]
        if alone:
            flag, needs = alone[0]
            raise ValueError(f"{flag} applies with {needs} only: set {needs} too, or drop {flag}.")
        if self.wise_ft_alpha is not None and self.wise_ft_alphas is not None:
            raise ValueError(
                "--wise_ft_alpha and --wise_ft_alphas: give a fixed α, or a grid to choose it from, not both."
            )
        if self.wise_ft_alphas is not None:
            _ = self.wise_ft_grid  # a malformed grid is refused here, when the flags are parsed
        if self.lora_r > 0:
            for flag, used, why in (
                (
                    "--noisytune",
                    self.noisytune > 0,
                    "the pretrained weights it perturbs are frozen under LoRA",
                ),
                (
                    "--wise_ft_alpha" if self.wise_ft_alpha is not None else "--wise_ft_alphas",
                    self.wise_ft_alpha is not None or self.wise_ft_alphas is not None,
                    "the pretrained weights are frozen; interpolating the adapters would scale their update by α²",
                ),
            ):
                if used:
                    raise ValueError(f"{flag} cannot be combined with --lora_r: {why}. Drop one of the two.")

    def _check_lora(self) -> None:
        """LoRA's flags: in range, given together, not combined with what adapters make meaningless."""
        if self.lora_r < 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(
                f"--lora_r must be >= 0 and --lora_dropout in [0, 1) (got {self.lora_r}, {self.lora_dropout})."
            )
        if self.lora_r == 0:
            given = [
                flag
                for flag, used in (
                    ("--lora_alpha", self.lora_alpha is not None),
                    ("--lora_dropout", self.lora_dropout > 0),
                    ("--lora_target_modules", self.lora_target_modules is not None),
                )
                if used
            ]
            if given:
                raise ValueError(f"{' and '.join(given)} appl(ies) with LoRA only: set --lora_r too.")
            return
        refused = [
            (flag, why)
            for flag, used, why in (
                (
                    "--l2sp_pretrained",
                    self.l2sp_pretrained > 0,
                    "the pretrained weights are frozen and the adapters have no pretrained value to be "
                    "pulled toward (LoRA starts from a random A and B = 0)",
                ),
                (
                    "--reinit_layers",
                    self.reinit_layers > 0,
                    "the re-initialised base layers would stay frozen at their random values",
                ),
                ("--mixout", self.mixout > 0, "the weights it mixes are frozen, so it would do nothing"),
            )
            if used
        ]
        if refused:
            flag, why = refused[0]
            raise ValueError(f"{flag} cannot be combined with --lora_r: {why}. Drop one of the two.")
        if not peft_available():
            raise ValueError(f"--lora_r needs PEFT, which is not installed: {PEFT_INSTALL}")

    def callbacks(
        self,
        *,
        seed: int = 0,
        pretrained: str | None = None,
        held_out: Any = None,
        metric: str | None = None,
    ) -> list[FineTuningCallback]:
        """The fine-tuning callbacks these options ask for, each named by the flags that asked for it.

        ``seed`` draws NoisyTune's noise (the job passes ``--seed``); WiSE-FT takes θ₀ from ``pretrained`` (the
        model's checkpoint) unless AdamWL2SP keeps anchors, and chooses α by ``metric`` on ``held_out`` (the
        tokenised training examples set aside, :attr:`wise_ft_held_out_share`).
        """
        callbacks: list[FineTuningCallback] = []
        if self.reinit_layers > 0:
            callback = ReinitCallback(self.reinit_layers, reinit_pooler=self.reinit_pooler)
            callbacks.append(_named(callback, f"--reinit_layers {self.reinit_layers}"))
        if self.freeze_layers > 0 or self.freeze_embeddings:
            option = f"--freeze_layers {self.freeze_layers}" if self.freeze_layers else "--freeze_embeddings"
            callbacks.append(
                _named(FreezeCallback(self.freeze_layers, embeddings=self.freeze_embeddings), option)
            )
        if self.mixout > 0:
            callbacks.append(_named(MixoutCallback(self.mixout), f"--mixout {self.mixout}"))
        if self.layer_decay is not None:
            callback = LLRDCallback(
                self.layer_decay, floor=self.layer_decay_floor, freeze_below=self.layer_decay_freeze_below
            )
            callbacks.append(_named(callback, f"--layer_decay {self.layer_decay}"))
        if self.lp_ft_head_steps is not None:
            callback = LPFTCallback(
                self.lp_ft_head_steps, head_lr=self.lp_ft_head_lr, warmup=self.unfreeze_warmup
            )
            callbacks.append(_named(callback, f"--lp_ft_head_steps {self.lp_ft_head_steps}"))
        if self.gradual_unfreeze is not None:
            callback = GradualUnfreezingCallback(self.gradual_unfreeze, warmup=self.unfreeze_warmup)
            callbacks.append(_named(callback, f"--gradual_unfreeze {self.gradual_unfreeze}"))
        if self.l2sp_pretrained > 0:
            callback = L2SPCallback(self.l2sp_pretrained, head_weight_decay=self.l2sp_head_weight_decay)
            callbacks.append(_named(callback, f"--l2sp_pretrained {self.l2sp_pretrained}"))
        if self.noisytune > 0:
            callbacks.append(
                _named(NoisyTuneCallback(self.noisytune, seed=seed), f"--noisytune {self.noisytune}")
            )
        use = self.weight_average_eval
        if self.ema_decay is not None:
            callbacks.append(
                _named(EMACallback(self.ema_decay, use_average=use), f"--ema_decay {self.ema_decay}")
            )
        if self.ema_half_life is not None:
            callback = EMACallback(half_life=self.ema_half_life, use_average=use)
            callbacks.append(_named(callback, f"--ema_half_life {self.ema_half_life}"))
        if self.swa_start is not None:
            callback = SWACallback(self.swa_start, every=self.swa_every, use_average=use)
            callbacks.append(_named(callback, f"--swa_start {self.swa_start}"))
        if self.r3f_lambda > 0:
            callback = R3FCallback(self.r3f_lambda, eps=self.r3f_eps, noise=self.r3f_noise)
            callbacks.append(_named(callback, f"--r3f_lambda {self.r3f_lambda}"))
        if self.wise_ft_alpha is not None:
            callback = WiSEFTCallback(self.wise_ft_alpha, pretrained=pretrained)
            callbacks.append(_named(callback, f"--wise_ft_alpha {self.wise_ft_alpha}"))
        if self.wise_ft_alphas is not None:
            callback = WiSEFTCallback(
                alphas=self.wise_ft_grid, held_out=held_out, metric=metric, pretrained=pretrained
            )
            callbacks.append(_named(callback, f"--wise_ft_alphas {self.wise_ft_alphas}"))
        return callbacks

    def optimizer_cls_and_kwargs(self, adamw_l2sp: bool) -> tuple[type, dict[str, Any]] | None:
        """``optimizer_cls_and_kwargs`` for the Trainer (``--optim adamw_l2sp``), else ``None``: ``--optim``."""
        if not adamw_l2sp:
            return None
        return AdamWL2SP, {
            "bias_correction": self.bias_correction,
            "coupled": self.l2sp_coupled,
            "selective": self.l2sp_selective,
        }

    def apply_adapters(self, model: PreTrainedModel) -> nn.Module:
        """``model`` wrapped with the LoRA adapters ``--lora_r`` asks for (a ``peft.PeftModel``), else ``model``.

        Call it right after the model is loaded, with the seed set: the adapters' A is drawn from the torch
        RNG, so ``--seed`` decides their initialisation as it decides the head's.
        """
        if self.lora_r == 0:
            return model
        targets = [name.strip() for name in (self.lora_target_modules or "").split(",") if name.strip()]
        return apply_lora(
            model,
            self.lora_r,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            target_modules=targets or None,
        )


@dataclass
class DiagnosticsArguments:
    """Instability diagnostics while the run goes (off by default; ``--diagnostics`` turns them all on)."""

    diagnostics: bool = field(
        default=False,
        metadata={
            "help": "Log gradient norms per depth, detect loss spikes, stop on NaN/inf, flag a run still at the "
            "label prior's loss (see --report_to tensorboard)."
        },
    )
    grad_norm_steps: int | None = field(
        default=None,
        metadata={"help": "Log per-depth gradient norms every N steps (default: --logging_steps)."},
    )
    loss_spike_window: int = field(
        default=50, metadata={"help": "Recent step losses in the spike statistic."}
    )
    loss_spike_threshold: float = field(
        default=6.0, metadata={"help": "Robust z-score (median/MAD) above which a step loss is a spike."}
    )
    save_spike_checkpoints: bool = field(
        default=False,
        metadata={"help": "Save the weights and optimizer state from the step before each spike."},
    )
    early_failure_after: float = field(
        default=0.3, metadata={"help": "Share of the steps after which a run at the prior's loss is flagged."}
    )
    stop_early_failure: bool = field(
        default=False, metadata={"help": "Stop a run flagged as an early failure."}
    )
    prune: str = field(
        default="off",
        metadata={
            "help": "Stop a run an early test flags as failing, recorded as a failed run: loss (its training "
            "loss still at the label prior's after --early_failure_after of the steps), dev (its first dev "
            "evaluation no better than the best constant prediction's), both (either), off (the default).",
            "choices": list(PRUNING_TESTS),
        },
    )
    rollback_on_divergence: int = field(
        default=0,
        metadata={
            "help": "On a NaN or infinite loss or gradient, roll back to the last good state (weights and optimizer) "
            "at a lower learning rate and go on, up to this many times, instead of stopping the run."
        },
    )
    rollback_lr_factor: float = field(
        default=0.5,
        metadata={"help": "With --rollback_on_divergence: the learning rates' factor at each roll-back."},
    )
    rollback_every: int = field(
        default=10,
        metadata={"help": "With --rollback_on_divergence: the optimizer steps between in-memory snapshots."},
    )

    def __post_init__(self) -> None:
        check_ranges(
            (
                "--rollback_on_divergence",
                self.rollback_on_divergence,
                self.rollback_on_divergence >= 0,
                ">= 0",
            ),
            ("--rollback_lr_factor", self.rollback_lr_factor, 0 < self.rollback_lr_factor <= 1, "in (0, 1]"),
            ("--rollback_every", self.rollback_every, self.rollback_every >= 1, ">= 1"),
        )
        check_ranges(
            (
                "--grad_norm_steps",
                self.grad_norm_steps,
                self.grad_norm_steps is None or self.grad_norm_steps >= 1,
                ">= 1",
            ),
            ("--loss_spike_window", self.loss_spike_window, self.loss_spike_window >= 2, ">= 2"),
            ("--loss_spike_threshold", self.loss_spike_threshold, self.loss_spike_threshold > 0, "> 0"),
            (
                "--early_failure_after",
                self.early_failure_after,
                0 < self.early_failure_after <= 1,
                "in (0, 1]",
            ),
        )

    def callbacks(
        self,
        prior_loss: float,
        *,
        metric: str | None = None,
        split: str | None = None,
        baseline: float | None = None,
    ) -> list[TrainerCallback]:
        """The diagnostic and pruning callbacks, given the loss of predicting the label prior (see
        ``prior_loss``) and the main metric's name, split and best constant score (for the dev test).

        ``--diagnostics`` records both early tests' verdicts without acting on them; ``--prune`` acts on one.
        """
        callbacks: list[TrainerCallback] = []
        prune_loss, prune_dev = self.prune in ("loss", "both"), self.prune in ("dev", "both")
        guard = NonFiniteGuardCallback(
            rollbacks=self.rollback_on_divergence,
            lr_factor=self.rollback_lr_factor,
            snapshot_every=self.rollback_every,
        )
        if self.diagnostics:
            callbacks += [
                GradNormCallback(every=self.grad_norm_steps),
                LossSpikeCallback(
                    window=self.loss_spike_window,
                    threshold=self.loss_spike_threshold,
                    save_checkpoint=self.save_spike_checkpoints,
                ),
                guard,
            ]
        elif self.rollback_on_divergence:
            callbacks.append(guard)
        if self.diagnostics or prune_loss:
            stop = self.stop_early_failure or prune_loss
            callbacks.append(EarlyFailureCallback(prior_loss, after=self.early_failure_after, stop=stop))
        if (self.diagnostics or prune_dev) and None not in (metric, split, baseline):
            callbacks.append(DevFailureCallback(metric, split, baseline, stop=prune_dev))
        return callbacks


@dataclass
class RunArguments:
    """How the script runs: recipe, launch, what it keeps."""

    recipe: str | None = field(
        default=None,
        metadata={"help": "A shipped recipe (devlin2019, mosbach2021, ...) or a recipe YAML file."},
    )
    xla_launch: bool = field(
        default=False,
        metadata={"help": "Start one process per TPU core with torch_xla.launch (instead of xla_spawn.py)."},
    )
    tpu_num_cores: int | None = field(
        default=None,
        metadata={
            "help": "Appended by xla_spawn.py; informational (the PJRT runtime uses every core, or one)."
        },
    )
    save_final_model: bool = field(
        default=False,
        metadata={"help": "Save the fine-tuned model and tokenizer to --output_dir at the end."},
    )
    overwrite_results: bool = field(
        default=False, metadata={"help": "Allow replacing an existing results.json in --output_dir."}
    )
    restarts: int = field(
        default=0,
        metadata={
            "help": "Restart until success: train with seeds --seed, --seed + 1, ... until this many runs have "
            "not failed (at most --max_runs runs), each in <output_dir>/seed-<k>, the tally in "
            "<output_dir>/restarts.json. With --prune, failing seeds are stopped early. 0: one run."
        },
    )
    max_runs: int = field(default=10, metadata={"help": "With --restarts: the most runs to try."})

    def __post_init__(self) -> None:
        if self.tpu_num_cores is not None and self.tpu_num_cores < 1:
            raise ValueError(f"--tpu_num_cores {self.tpu_num_cores}: must be >= 1.")
        if self.restarts < 0 or self.max_runs < 1 or self.restarts > self.max_runs:
            raise ValueError(
                f"--restarts {self.restarts} --max_runs {self.max_runs}: need 0 <= --restarts <= --max_runs and "
                "--max_runs >= 1."
            )


ADAMW_L2SP = "adamw_l2sp"
"""The ``--optim`` value of :class:`~transformers_fine_tuning.AdamWL2SP`."""

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


_DATACLASSES = (
    ModelArguments,
    DataArguments,
    FineTuningArguments,
    DiagnosticsArguments,
    RunArguments,
    FineTuneTrainingArguments,
)


def _known_names() -> set[str]:
    return {f.name for cls in _DATACLASSES for f in fields(cls) if f.init}


_REMOVED = {"optimizer": "optim adamw_l2sp", "l2sp_novel": "l2sp_head_weight_decay"}
"""Names removed in 0.2.0 (deprecated in 0.1.0), with what replaces them."""


def _unknown(names: Iterable[str], what: str) -> str | None:
    """A message naming the unknown argument names, each with its closest known ones (or, for a removed name, its
    replacement); ``None`` if all known."""
    known = _known_names()
    accepted = known | {f"no_{name}" for name in known} | {"help"}  # HfArgumentParser's --no_<flag>
    unknown = [name for name in dict.fromkeys(names) if name not in accepted]
    if not unknown:
        return None
    shown = []
    for name in unknown:
        if name in _REMOVED:
            shown.append(f"{what}{name} (removed in 0.2.0: use {what}{_REMOVED[name]})")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=2)
        shown.append(
            f"{what}{name}" + (f" (did you mean {' or '.join(what + c for c in close)}?)" if close else "")
        )
    return f"unknown {'flag' if what else 'key'}(s) {', '.join(shown)}"


def _load_recipe(name: str | None) -> Recipe | None:
    if name is None:
        return None
    recipe = load_recipe(name)
    unknown = sorted(set(recipe.arguments) - _known_names())
    if unknown:
        raise ValueError(f"Recipe {recipe.name!r} sets unknown argument(s) {unknown}.")
    return recipe


def parse_fine_tune_args(argv: list[str] | None = None) -> FineTuneArguments:
    """Parse flags, or a single JSON/YAML file, applying the recipe's values under explicit ones.

    Raises:
        ValueError: unknown recipe, unknown keys, conflicting fine-tuning options.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(_DATACLASSES, allow_abbrev=False)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        path = Path(argv[0])
        values = read_mapping_file(path, "config file")
        recipe = _load_recipe(values.get("recipe"))
        merged = {**(recipe.arguments if recipe else {}), **values}
        unknown = _unknown(merged, "")
        if unknown:
            raise ValueError(f"{path}: {unknown}; every key must be a fine-tune flag name (see --help).")
        parsed = parser.parse_dict(merged)
    else:
        unknown = _unknown((token[2:].split("=", 1)[0] for token in argv if token.startswith("--")), "--")
        if unknown:
            raise ValueError(f"{unknown}; --help lists the flags.")
        peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        peek.add_argument("--recipe")
        recipe = _load_recipe(peek.parse_known_args(argv)[0].recipe)
        if recipe is not None:
            parser.set_defaults(**recipe.arguments)
        parsed = parser.parse_args_into_dataclasses(args=argv)
    arguments = FineTuneArguments(*parsed, recipe=recipe)
    fine_tuning, training = arguments.fine_tuning, arguments.training
    fine_tuning.check(training.adamw_l2sp)
    pull = training.learning_rate * fine_tuning.l2sp_pretrained
    if pull > 1 and not (fine_tuning.l2sp_coupled or fine_tuning.l2sp_selective):
        raise ValueError(
            f"--learning_rate {training.learning_rate:g} × --l2sp_pretrained {fine_tuning.l2sp_pretrained:g} = "
            f"{pull:g} > 1: the decoupled pull θ ← θ − lr·λ·(θ − θ₀) would overshoot the pretrained weights at every "
            "step. Lower --l2sp_pretrained (typically 0.01 to 1 at a learning rate near 2e-5), or add --l2sp_coupled."
        )
    return arguments


def xla_launch_requested(argv: list[str] | None = None) -> bool:
    """Whether the arguments (flags, config file or recipe) ask for ``--xla_launch``, read without building
    ``TrainingArguments``: building them sets up the device, which starts the XLA runtime, and
    ``torch_xla.launch`` refuses to start processes after that ("Runtime is already initialized").

    Arguments it cannot read give ``False``, for :func:`parse_fine_tune_args` to report.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
            values = read_mapping_file(argv[0], "config file")
            recipe = _load_recipe(values.get("recipe"))
            return bool({**(recipe.arguments if recipe else {}), **values}.get("xla_launch", False))
        parser = HfArgumentParser(RunArguments, add_help=False, exit_on_error=False, allow_abbrev=False)
        recipe = _load_recipe(parser.parse_known_args(argv)[0].recipe)
        if recipe is not None:
            parser.set_defaults(**recipe.arguments)
        return bool(parser.parse_known_args(argv)[0].xla_launch)
    except (OSError, ValueError, yaml.YAMLError, argparse.ArgumentError):
        return False
