"""The stabilising techniques' arguments: their values, ranges and the rules between them (the builder turns
them into callbacks, optimizer and adapters: :mod:`transformers_fine_tuning.build`)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from ..adapters import PEFT_INSTALL, peft_available
from ..optim.param_groups import RATE_SHARE, is_rate_share
from ..techniques.registry import EXCLUSIVE, TECHNIQUES, Technique
from .ranges import check_ranges

ADAMW_L2SP = "adamw_l2sp"
"""The ``--optim`` value of :class:`~transformers_fine_tuning.AdamWL2SP`."""


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
            ("--layer_decay", self.layer_decay, is_rate_share(self.layer_decay), RATE_SHARE),
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
                (flag, value, is_rate_share(value), RATE_SHARE)
                for flag, value in (
                    ("--layer_decay_floor", self.layer_decay_floor),
                    ("--layer_decay_freeze_below", self.layer_decay_freeze_below),
                )
            )
        )
        self._check_stabilizer_ranges()
        if self.lora_r < 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(
                f"--lora_r must be >= 0 and --lora_dropout in [0, 1) (got {self.lora_r}, {self.lora_dropout})."
            )

    def check(self, adamw_l2sp: bool) -> None:
        """Reject option combinations that cannot do what they say; ``adamw_l2sp``: ``--optim adamw_l2sp``.

        The rules between techniques — options given without their technique, techniques that exclude each other,
        techniques that cannot work under LoRA's adapters — are the registry's
        (:data:`~transformers_fine_tuning.techniques.TECHNIQUES`), checked in its order."""
        self._check_optimizer(adamw_l2sp)
        given = {entry.name: self._given(entry.flags) for entry in TECHNIQUES}
        self._check_options(given)
        self._check_exclusive(given)
        self._check_adapters(given)
        if self.wise_ft_alphas is not None:
            _ = self.wise_ft_grid  # a malformed grid is refused here, when the flags are parsed
        if self.lora_r > 0 and not peft_available():
            raise ValueError(f"--lora_r needs PEFT, which is not installed: {PEFT_INSTALL}")

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

    def asked_for(self, entry: Technique) -> str | None:
        """How the user asked for technique ``entry``: its first flag given, with its value (``--reinit_layers
        4``, ``--freeze_embeddings``); ``None`` if it is off."""
        name = next((name for name in entry.flags if getattr(self, name) != _DEFAULTS[name]), None)
        if name is None:
            return None
        value = getattr(self, name)
        return f"--{name}" if value is True else f"--{name} {value}"

    def _check_optimizer(self, adamw_l2sp: bool) -> None:
        """The optimizer's own flags: they need AdamWL2SP; Selective Projection Decay's λ range and form."""
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

    def _given(self, names: tuple[str, ...]) -> list[str]:
        """The flags among ``names`` given away from their defaults, as the user wrote them (``--flag``, or
        ``--flag false`` for a switch that is on by default)."""
        return [
            f"--{name} false" if _DEFAULTS[name] is True else f"--{name}"
            for name in names
            if getattr(self, name) != _DEFAULTS[name]
        ]

    def _check_options(self, given: dict[str, list[str]]) -> None:
        """The first option given without a technique it applies with (``given``: each technique's flags)."""
        for entry in TECHNIQUES:
            for flag in self._given(entry.options):
                owners = [other for other in TECHNIQUES if flag.split()[0][2:] in other.options]
                if not any(given[owner.name] for owner in owners):
                    needs = " or ".join(f"--{name}" for owner in owners for name in owner.flags)
                    raise ValueError(f"{flag} applies with {needs} only: set {needs} too, or drop {flag}.")

    @staticmethod
    def _check_exclusive(given: dict[str, list[str]]) -> None:
        """Techniques of one exclusive group given together (:data:`~..techniques.EXCLUSIVE`)."""
        for group, refusal in EXCLUSIVE.items():
            flags = [flag for entry in TECHNIQUES if group in entry.exclusive for flag in given[entry.name]]
            if len(flags) > 1:
                raise ValueError(f"{' and '.join(flags)}: {refusal}")

    @staticmethod
    def _check_adapters(given: dict[str, list[str]]) -> None:
        """Techniques given with ``--lora_r`` that cannot work on a model with adapters, the first refused."""
        if not given["lora"]:
            return
        for entry in TECHNIQUES:
            if entry.with_adapters is not None and given[entry.name]:
                flag = given[entry.name][0]
                raise ValueError(
                    f"{flag} cannot be combined with --lora_r: {entry.with_adapters}. Drop one of the two."
                )

    def _check_stabilizer_ranges(self) -> None:
        """The ranges of NoisyTune's, weight averaging's, R3F's, WiSE-FT's and ``--best_held_out``'s flags."""
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


_DEFAULTS = {
    entry.name: entry.default for entry in fields(FineTuningArguments) if entry.default is not MISSING
}
"""Each flag's default: a flag away from it is given."""
