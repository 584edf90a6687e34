"""NoisyTune, weight averaging (EMA, SWA), R3F and WiSE-FT as Trainer callbacks: thin wrappers over
:func:`~transformers_fine_tuning.apply_noisytune`, :mod:`~transformers_fine_tuning.averaging` and
:mod:`~transformers_fine_tuning.r3f`, each checking itself against the model and the plan.

The pretrained weights θ₀ mean one thing for all of them — the weights as loaded, before any noise: L2-SP's
anchors, Mixout's targets, WiSE-FT's θ₀ are the clean pretrained values; NoisyTune only moves the point
training starts from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from .. import surgery
from ..architectures import ModelLayout, model_layout
from ..averaging import (
    WeightAverage,
    choose_wise_ft_alpha,
    ema_decay_from_half_life,
    ema_weight,
    swa_weight,
    wise_ft_interpolate,
)
from ..r3f import NOISE_TYPES, output_logits, r3f_term
from .base import (
    FineTuningCallback,
    FineTuningPlan,
    LossTermCallback,
    OptimizerSetup,
    keeps_anchors,
    steps_of,
)

__all__ = [
    "EMACallback",
    "NoisyTuneCallback",
    "R3FCallback",
    "SWACallback",
    "WeightAveragingCallback",
    "WiSEFTCallback",
]

logger = logging.getLogger(__name__)


def _pretrained_names(model: nn.Module, plan: FineTuningPlan, layout: ModelLayout | None = None) -> list[str]:
    """The trainable pretrained parameters: not the new head, not re-initialised, not adapters, not frozen."""
    layout = layout or model_layout(model, plan.layer_map)
    return [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and not layout.is_novel(name) and name not in plan.novel
    ]


class NoisyTuneCallback(FineTuningCallback):
    """NoisyTune (Wu et al. 2022, Eq. 1): uniform noise U(−λ/2, λ/2)·std(W) on every pretrained matrix W, once,
    before training. See :func:`transformers_fine_tuning.apply_noisytune` for which parameters.

    Runs after re-initialisation, freezing and Mixout (so re-initialised layers and frozen ones get no noise,
    and Mixout's targets are the clean pretrained weights). When the optimizer keeps L2-SP anchors, they are the
    clean pretrained weights too: L2-SP regularises toward what pretraining learnt, not toward a random
    perturbation of it (the clean values are kept until the optimizer copies them, then dropped). ``seed``
    draws the noise (the fine-tune job passes ``--seed``); the global RNG is not touched.
    """

    technique = "noisytune"

    def __init__(self, noise_lambda: float = 0.15, *, seed: int = 0) -> None:
        if not noise_lambda >= 0.0:
            raise ValueError(f"NoisyTuneCallback: noise_lambda must be >= 0, got {noise_lambda}.")
        self.noise_lambda = noise_lambda
        self.seed = seed
        self.perturbed: list[str] = []
        self._clean_anchors = False

    def _arguments(self) -> str:
        return f"{self.noise_lambda}" + (f", seed={self.seed}" if self.seed else "")

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        self._clean_anchors = keeps_anchors(plan, optimizer)

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        self.perturbed = surgery.apply_noisytune(
            model,
            self.noise_lambda,
            seed=self.seed,
            exclude=plan.novel,
            clean=plan.anchors if self._clean_anchors else None,
            layer_map=plan.layer_map,
        )


class WeightAveragingCallback(FineTuningCallback):
    """Base of :class:`EMACallback` and :class:`SWACallback`: an average of the trainable parameters over the
    training iterates (:class:`~transformers_fine_tuning.averaging.WeightAverage`), updated after every averaged
    optimizer step.

    With ``use_average`` (the default) every evaluation during training runs on the averaged weights (swapped in
    and out again, exactly), and when training ends the model takes the averaged weights for good — so the final
    evaluation, ``save_model`` and a WiSE-FT after it all see the average. Checkpoints keep the trained weights
    (training continues from them) and carry the average in their ``optimizer.pt``, so
    ``resume_from_checkpoint`` continues it exactly; resuming from a checkpoint that lacks it is refused.

    What is averaged: the parameters that train (``requires_grad``), in their dtype, on their device — memory:
    one copy of them. Not averaged: buffers (Mixout's ``mixout_target`` stays the pretrained target), frozen
    parameters, and the optimizer's state (L2-SP's anchors stay the pretrained weights and pull the *trained*
    weights, not the average). Under ``torchrun`` every rank holds the same parameters after each step, so every
    rank keeps the same average, with no communication. The encoders here have LayerNorm, not BatchNorm, so no
    normalisation statistics need recomputing for the average (SWA's ``update_bn``).
    """

    needs_optimizer_build = False

    def __init__(self, *, use_average: bool = True) -> None:
        self.use_average = use_average
        self.average: WeightAverage | None = None
        self.applied = False
        self._loaded: Mapping[str, Any] | None = None

    # ---- what a kind of average decides ---------------------------------------------------------------------

    def _begin(self, max_steps: int) -> None:
        """Fix the schedule for a run of ``max_steps`` optimizer steps."""

    def weight(self, step: int, num_averaged: int) -> float | None:
        """The weight of the iterate of optimizer step ``step`` (the ``num_averaged``-th averaged), or ``None``
        when this step is not averaged."""
        raise NotImplementedError

    def averaged_by(self, step: int) -> int:
        """How many iterates the average holds after optimizer step ``step``."""
        raise NotImplementedError

    # ---- checks and events ----------------------------------------------------------------------------------

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        args = getattr(plan.trainer, "args", None)
        if args is not None and args.load_best_model_at_end:
            raise ValueError(
                f"{self.describe()} and --load_best_model_at_end: the best checkpoint holds the trained weights, "
                "its evaluation was of the average. Drop --load_best_model_at_end (the average is the model kept "
                "at the end), or drop the weight average."
            )
        if args is not None and (args.deepspeed or args.fsdp):
            raise ValueError(
                f"{self.describe()} averages whole parameters, which DeepSpeed and FSDP shard; use data-parallel "
                "training (torchrun) without them, or drop the weight average."
            )

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        self._begin(state.max_steps)
        self.applied = False
        self.average = WeightAverage(
            (name, param) for name, param in model.named_parameters() if param.requires_grad
        )
        if self._loaded is not None:
            self.average.load_state_dict(self._loaded)
            self._loaded = None
        expected = self.averaged_by(state.global_step)
        if self.average.num_averaged != expected:
            raise RuntimeError(
                f"{self.describe()}: resuming at step {state.global_step}, whose average holds {expected} iterates, "
                f"but the checkpoint carries {self.average.num_averaged} (it was made without this weight average, "
                "or with another). Resume from a checkpoint of the same arguments, or start over."
            )

    def on_step_end(self, args, state, control, **kwargs):
        weight = self.weight(state.global_step, self.average.num_averaged + 1)
        if weight is not None:
            self.average.update(weight)

    def on_train_end(self, args, state, control, **kwargs):
        if self.use_average and self.average is not None and self.average.num_averaged:
            self.average.copy_to_params()
            self.applied = True
            logger.info(
                "%s: the model ends with the average of %d iterates.",
                self.describe(),
                self.average.num_averaged,
            )

    def evaluation_context(self, model: nn.Module) -> AbstractContextManager[None]:
        if self.use_average and not self.applied and self.average is not None:
            return self.average.swapped()
        return nullcontext()

    def checkpoint_state(self) -> dict[str, Any] | None:
        if self.average is None or not self.average.num_averaged:
            return None
        return self.average.state_dict()

    def load_checkpoint_state(self, state: dict[str, Any] | None) -> None:
        self._loaded = state


class EMACallback(WeightAveragingCallback):
    """An exponential moving average of the weights (Polyak averaging, exponential form; bias-corrected as in
    Kingma & Ba 2015, Sec. 7.2): ē_n = Σᵢ (1 − β)·β^(n−i)·θᵢ / (1 − β^n) over the iterates θ₁ … θ_n of every
    optimizer step. Give the decay β, or the ``half_life`` h (β = 0.5^(1/h): an iterate's weight halves every h
    steps; below 1, a share of all steps, as ``--warmup_steps``). See :class:`WeightAveragingCallback`.
    """

    technique = "ema"

    def __init__(
        self, decay: float | None = None, *, half_life: float | None = None, use_average: bool = True
    ) -> None:
        if (decay is None) == (half_life is None):
            raise ValueError("EMACallback takes the decay or the half_life, one of the two.")
        if decay is not None and not 0.0 < decay < 1.0:
            raise ValueError(f"EMACallback: decay must be in (0, 1), got {decay}.")
        if half_life is not None and not half_life > 0.0:
            raise ValueError(f"EMACallback: half_life must be > 0, got {half_life}.")
        super().__init__(use_average=use_average)
        self.decay = decay
        self.half_life = half_life
        self.decay_used = decay

    def _arguments(self) -> str:
        shown = f"{self.decay}" if self.decay is not None else f"half_life={self.half_life}"
        return shown + ("" if self.use_average else ", use_average=False")

    def _begin(self, max_steps: int) -> None:
        if self.decay is None:
            steps = self.half_life if self.half_life >= 1 else self.half_life * max_steps
            self.decay_used = ema_decay_from_half_life(steps)

    def weight(self, step: int, num_averaged: int) -> float | None:
        return ema_weight(num_averaged, self.decay_used)

    def averaged_by(self, step: int) -> int:
        return step


class SWACallback(WeightAveragingCallback):
    """Stochastic weight averaging (Izmailov et al. 2018, Alg. 1): the uniform average of the iterates after the
    first ``start`` optimizer steps (below 1: a share of all steps, as ``--warmup_steps``; 0.75 — the last
    quarter — is the paper's choice), one every ``every`` steps. Izmailov et al. switch to a constant or cyclical
    learning rate for the averaged phase; here the run keeps its own schedule (``--lr_scheduler_type
    constant_with_warmup`` gives the paper's constant form). See :class:`WeightAveragingCallback`.
    """

    technique = "swa"

    def __init__(self, start: float = 0.75, *, every: int = 1, use_average: bool = True) -> None:
        if not start >= 0.0 or every < 1:
            raise ValueError(f"SWACallback: start must be >= 0 and every >= 1, got {start}, {every}.")
        super().__init__(use_average=use_average)
        self.start = start
        self.every = every
        self.start_step = 0

    def _arguments(self) -> str:
        return (
            f"{self.start}"
            + (f", every={self.every}" if self.every != 1 else "")
            + ("" if self.use_average else ", use_average=False")
        )

    def _begin(self, max_steps: int) -> None:
        self.start_step = steps_of(self.start, max_steps)
        if self.start_step + self.every > max_steps:
            raise ValueError(
                f"{self.describe()}: averaging from step {self.start_step + self.every} of a {max_steps}-step run "
                "averages nothing. Start earlier (a share below 1, e.g. 0.75), or train longer."
            )

    def weight(self, step: int, num_averaged: int) -> float | None:
        if step <= self.start_step or (step - self.start_step) % self.every:
            return None
        return swa_weight(num_averaged)

    def averaged_by(self, step: int) -> int:
        return max(0, (step - self.start_step) // self.every)


class R3FCallback(LossTermCallback):
    """R3F (Aghajanyan et al. 2021, Eq. 3): λ·KL_S(f(x) ‖ f(x + z)) added to the task loss, z ~ N(0, σ²I)
    (``noise="normal"``) or U(−σ, σ) on the input embeddings. See :func:`transformers_fine_tuning.r3f_term`.

    A :class:`~transformers_fine_tuning.LossTermCallback`: logged as ``loss_term/r3f``; one more forward and
    backward pass per step.
    """

    technique = "r3f"

    term_name = "r3f"

    def __init__(self, strength: float = 1.0, *, eps: float = 1e-5, noise: str = "normal") -> None:
        if not strength > 0.0 or not eps > 0.0:
            raise ValueError(f"R3FCallback: strength λ and eps σ must be > 0, got {strength}, {eps}.")
        if noise not in NOISE_TYPES:
            raise ValueError(f"R3FCallback: noise must be one of {', '.join(NOISE_TYPES)}, got {noise!r}.")
        self.strength = strength
        self.eps = eps
        self.noise = noise

    def _arguments(self) -> str:
        return f"{self.strength}, eps={self.eps}, noise={self.noise!r}"

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        """Refuse, at construction, a head whose outputs have no single ``logits`` (question answering)."""
        from transformers.models.auto import modeling_auto

        inner = getattr(model, "get_base_model", lambda: model)()
        qa_classes = set(modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES.values())
        if type(inner).__name__ in qa_classes:
            raise ValueError(
                f"{self.describe()} compares the model's `logits`, but {type(inner).__name__} outputs start_logits "
                "and end_logits: R3F is supported for heads with one `logits` (sequence and token classification, "
                "multiple choice, masked LM). Drop it for question answering."
            )

    def loss_term(
        self, model: nn.Module, inputs: dict[str, Any], outputs: Any, loss: Tensor
    ) -> Tensor | None:
        logits = output_logits(outputs, index=1)
        return self.strength * r3f_term(model, inputs, logits, eps=self.eps, noise=self.noise)


PretrainedSource = str | os.PathLike | Mapping[str, Tensor]


class WiSEFTCallback(FineTuningCallback):
    """WiSE-FT (Wortsman et al. 2022, Eq. 1): after training, θ = (1 − α)·θ₀ + α·θ for the pretrained parameters.

    α is given (``alpha``), or chosen from the grid ``alphas`` by the ``metric`` on ``held_out`` — data held out
    from training, never an evaluation split the Trainer reports (refused: α chosen there makes that score
    optimistic); ties go to the larger α. α = 1 is the fine-tuned model, α = 0 the pretrained backbone. The
    parameters interpolated are the trainable pretrained ones: the new head and re-initialised layers have no θ₀
    and keep their fine-tuned values (so α = 0 is the pretrained backbone under the fine-tuned head, not a
    zero-shot model); frozen ones equal θ₀ anyway. After a weight average (:class:`EMACallback`,
    :class:`SWACallback`), θ is the averaged model.

    θ₀ — the clean pretrained weights, also under NoisyTune — comes from AdamWL2SP's anchors when the optimizer
    keeps them (no extra memory), else from ``pretrained``: a checkpoint path or Hub id (the model's class loads
    it on the CPU when training is done: one model's memory for a moment), or a mapping name → tensor; else from
    a CPU copy taken before training (memory: one copy of the pretrained parameters, all run long). Choosing α
    holds one more copy of the pretrained parameters on their device while the grid is scored, and costs one
    prediction pass over ``held_out`` per α. Runs on every process (under ``torchrun`` the scores are gathered
    over all ranks, so every rank chooses the same α). :attr:`alpha_chosen` and :attr:`scores` hold the outcome.
    """

    technique = "wise_ft"  # a copy of θ₀, when one is needed, is taken before NoisyTune's noise
    needs_optimizer_build = False

    def __init__(
        self,
        alpha: float | None = None,
        *,
        alphas: Sequence[float] | None = None,
        held_out: Any = None,
        metric: str | None = None,
        greater_is_better: bool = True,
        pretrained: PretrainedSource | None = None,
    ) -> None:
        if (alpha is None) == (alphas is None):
            raise ValueError(
                "WiSEFTCallback takes a fixed alpha or a grid of alphas to choose from, one of the two."
            )
        grid = [alpha] if alphas is None else [float(a) for a in alphas]
        if not grid or not all(0.0 <= a <= 1.0 for a in grid):
            raise ValueError(f"WiSEFTCallback: α must be in [0, 1], got {grid}.")
        if alphas is not None and (held_out is None or metric is None):
            raise ValueError(
                "WiSEFTCallback(alphas=...) chooses α on data held out from training: give held_out= (a dataset) "
                "and metric= (the metric that decides, e.g. 'accuracy')."
            )
        self.alpha = alpha
        self.alphas = None if alphas is None else grid
        self.held_out = held_out
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.pretrained = pretrained
        self.alpha_chosen: float | None = None
        self.scores: dict[float, float] = {}
        self.source: str | None = None
        self._names: list[str] = []
        self._snapshot: dict[str, Tensor] = {}

    def _arguments(self) -> str:
        return f"{self.alpha}" if self.alphas is None else f"alphas={self.alphas}"

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        super().check(plan, layout, optimizer)
        evaluated = getattr(plan.trainer, "eval_dataset", None)
        reported = evaluated.values() if isinstance(evaluated, Mapping) else [evaluated]
        if self.held_out is not None and any(self.held_out is dataset for dataset in reported):
            raise ValueError(
                f"{self.describe()}: held_out is an evaluation split the Trainer reports; α chosen on it would make "
                "that score optimistic. Hold out part of the training data instead."
            )
        if keeps_anchors(plan, optimizer):
            self.source = "anchors"
        elif self.pretrained is None:
            self.source = "copy"
        else:
            self.source = "mapping" if isinstance(self.pretrained, Mapping) else "checkpoint"

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        if self.source == "checkpoint" and not callable(getattr(type(model), "from_pretrained", None)):
            raise ValueError(
                f"{self.describe()}: pretrained={self.pretrained!r} is a checkpoint, which {type(model).__name__} "
                "cannot load (no from_pretrained: a module of your own). Leave pretrained unset (a copy of θ₀ is "
                "taken before training), or give a mapping name → tensor."
            )
        self._names = _pretrained_names(model, plan)
        if self.source == "copy":
            named = dict(model.named_parameters())
            self._snapshot = {name: named[name].detach().to("cpu", copy=True) for name in self._names}

    def after_train(self, trainer: Any) -> None:
        model = trainer.model
        pretrained = self._pretrained_values(trainer)
        if self.alphas is None:
            wise_ft_interpolate(model, pretrained, self.alpha)
            self.alpha_chosen, self.scores = self.alpha, {}
        else:
            self.alpha_chosen, self.scores = choose_wise_ft_alpha(
                model,
                pretrained,
                self.alphas,
                lambda: self._score(trainer),
                greater_is_better=self.greater_is_better,
            )
        self._snapshot = {}
        logger.info(
            "%s: α = %g from θ₀ of the %s; held-out scores %s",
            self.describe(),
            self.alpha_chosen,
            self.source,
            self.scores,
        )

    def _score(self, trainer: Any) -> float:
        metrics = trainer.predict(self.held_out, metric_key_prefix="wise_ft").metrics
        key = f"wise_ft_{self.metric}"
        if key not in metrics:
            shown = sorted(name.removeprefix("wise_ft_") for name in metrics)
            raise ValueError(f"{self.describe()}: no metric {self.metric!r} on held_out; it has {shown}")
        return metrics[key]

    @torch.no_grad()
    def _pretrained_values(self, trainer: Any) -> dict[str, Tensor]:
        """θ₀ of every interpolated parameter, from the source :meth:`check` chose."""
        if self.source == "copy":
            return self._snapshot
        if self.source == "anchors":
            optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
            named = dict(trainer.model.named_parameters())
            anchors = {name: optimizer.state.get(named[name], {}).get("anchor") for name in self._names}
            missing = [name for name, anchor in anchors.items() if anchor is None]
            if missing:
                raise RuntimeError(
                    f"{self.describe()}: the optimizer keeps no L2-SP anchor for {missing[:5]}; give "
                    "pretrained= (the pretrained checkpoint) instead."
                )
            return anchors
        if self.source == "mapping":
            missing = [name for name in self._names if name not in self.pretrained]
            if missing:
                raise ValueError(f"{self.describe()}: pretrained= has no value for {missing[:5]}")
            return {name: self.pretrained[name] for name in self._names}
        model = getattr(trainer.model, "module", trainer.model)
        with torch.random.fork_rng(devices=[]):  # the new head it draws takes nothing from the run's RNG
            loaded = type(model).from_pretrained(self.pretrained, config=model.config)
        named = dict(loaded.named_parameters())
        return {name: named[name].detach() for name in self._names}
