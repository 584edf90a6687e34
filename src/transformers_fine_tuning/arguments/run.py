"""How the run is watched (diagnostics, pruning, roll-back) and how it runs (recipe, launch, restarts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..results import PRUNING_TESTS
from .ranges import check_ranges


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
    rollback_on_spikes: bool = field(
        default=False,
        metadata={
            "help": "With --rollback_on_divergence: roll back on loss spikes too (a step loss more than "
            "--loss_spike_threshold robust standard deviations above the last --loss_spike_window ones)."
        },
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
        if self.rollback_on_spikes and not self.rollback_on_divergence:
            raise ValueError(
                "--rollback_on_spikes applies with --rollback_on_divergence only: set --rollback_on_divergence "
                "(the roll-backs allowed) too, or drop --rollback_on_spikes."
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
