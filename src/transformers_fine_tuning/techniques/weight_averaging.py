"""Averages of the training iterates in weight space, the part EMA (:mod:`.ema`) and SWA (:mod:`.swa`) share: the
running average (:class:`WeightAverage`, on tensors, usable in any training loop) and the base of their Trainer
callbacks (:class:`WeightAveragingCallback`).

A running average ē_t is kept beside the parameters θ_t of step t, updated after every averaged optimizer step as
``ē ← lerp(ē, θ_t, w_n)`` (one ``torch._foreach_lerp_`` over all parameters), where n counts the iterates averaged
so far and the kind of average gives the weight w_n (:func:`.swa.swa_weight`, :func:`.ema.ema_weight`).

The average is of the *trainable parameters* only, in their own dtype, on their own device: its memory is one copy
of them. Buffers (e.g. Mixout's ``mixout_target``, the pretrained value it mixes toward) and frozen parameters are
not averaged — they do not change during training. :meth:`WeightAverage.swapped` puts the average into the
parameters for an evaluation and takes it out again, bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ..architectures import ModelLayout
from .base import FineTuningCallback, FineTuningPlan, OptimizerSetup

__all__ = ["WeightAverage", "WeightAveragingCallback"]

logger = logging.getLogger(__name__)


class WeightAverage:
    """A running average of some parameters over training iterates (EMA or SWA: the caller gives the weight).

    ::

        average = WeightAverage((n, p) for n, p in model.named_parameters() if p.requires_grad)
        for step, batch in enumerate(loader, 1):
            ...; optimizer.step()
            average.update(ema_weight(average.num_averaged + 1, 0.999))  # or swa_weight(...)
        with average.swapped():
            evaluate(model)  # with the averaged weights; afterwards the model is as it was, bit for bit
        average.copy_to_params()  # end with the average

    The averages are tensors of the parameters' dtype on the parameters' devices, created from the first
    iterate (weight 1); :meth:`state_dict` / :meth:`load_state_dict` key them by parameter name, for checkpoints.
    """

    def __init__(self, named_parameters: Iterable[tuple[str, Tensor]]) -> None:
        named = list(named_parameters)
        self.names = [name for name, _ in named]
        self.params = [param for _, param in named]
        self.averages: list[Tensor] = []
        self.num_averaged = 0

    @torch.no_grad()
    def update(self, weight: float) -> None:
        """Average in the parameters' current values with ``weight``: ``ē ← lerp(ē, θ, weight)``; the first
        update copies them (whatever the weight)."""
        if not self.averages:
            self.averages = [param.detach().clone() for param in self.params]
        elif self.params:
            torch._foreach_lerp_(self.averages, [param.detach() for param in self.params], weight)
        self.num_averaged += 1

    @torch.no_grad()
    def _swap(self) -> None:
        for param, average in zip(self.params, self.averages, strict=True):
            current = param.detach().clone()
            param.copy_(average)
            average.copy_(current)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The averaged weights in the parameters inside the block, the trained ones again after it (exactly:
        a swap, one parameter's temporary copy at a time). Nothing happens before the first update."""
        if not self.averages:
            yield
            return
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Put the average into the parameters for good (the end of training)."""
        for param, average in zip(self.params, self.averages, strict=True):
            param.copy_(average)

    def state_dict(self) -> dict[str, Any]:
        """``{"num_averaged": n, "averages": {name: tensor}}`` (the tensors themselves, not copies)."""
        return {
            "num_averaged": self.num_averaged,
            "averages": dict(zip(self.names, self.averages, strict=True)),
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s content into tensors of the parameters' dtype and device.

        Raises:
            ValueError: the saved averages are of other parameters (names or shapes).
        """
        saved = state["averages"]
        if sorted(saved) != sorted(self.names):
            missing, unknown = sorted(set(self.names) - set(saved)), sorted(set(saved) - set(self.names))
            raise ValueError(
                f"the saved weight average is of other parameters: missing {missing[:5]}, unknown {unknown[:5]}"
            )
        averages = []
        for name, param in zip(self.names, self.params, strict=True):
            if saved[name].shape != param.shape:
                raise ValueError(
                    f"the saved average of {name} has shape {tuple(saved[name].shape)}, not {tuple(param.shape)}"
                )
            averages.append(saved[name].to(param.device, param.dtype, copy=True))
        self.averages = averages
        self.num_averaged = int(state["num_averaged"])


class WeightAveragingCallback(FineTuningCallback):
    """Base of :class:`EMACallback` and :class:`SWACallback`: an average of the trainable parameters over the
    training iterates (:class:`WeightAverage`), updated after every averaged
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
