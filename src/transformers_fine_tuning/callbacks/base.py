"""The contract between fine-tuning callbacks and :class:`~transformers_fine_tuning.TrainerOptimizerInit`.

A fine-tuning callback is an ordinary ``TrainerCallback`` (it goes in ``callbacks=[...]``) with three extra
hooks that the Trainer subclass calls, per model, at the moments the technique needs — moments for which the
Trainer has no event (as Composer has an explicit event for surgery before the optimizer exists):

1. :meth:`FineTuningCallback.check` — validate the technique against the model's layout, the optimizer
   setup and what the callbacks before it plan (:class:`FineTuningPlan`), before anything is changed: a
   conflict fails at construction, before any training, in the words the user gave (the flag or the call);
2. :meth:`FineTuningCallback.prepare_model` — model surgery, after the model is built (and again for each
   model that ``model_init`` builds), before the optimizer and its anchors exist;
3. :meth:`FineTuningCallback.param_group_options` — keyword arguments for
   :func:`~transformers_fine_tuning.param_groups` while the optimizer is built.

The Trainer only runs them, in :attr:`~FineTuningCallback.surgery_stage` order; each callback brings its own
checks, so a new technique needs no change to the Trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn
from transformers import TrainerCallback

from ..architectures import LayerMap, ModelLayout
from ..optim.adamwl2sp import AdamWL2SP

__all__ = ["ADAMW_OPTIMS", "FineTuningCallback", "FineTuningPlan", "OptimizerSetup"]

#: ``--optim`` values for which a run that needs anchors may switch to AdamWL2SP without surprising anyone.
ADAMW_OPTIMS = ("adamw_torch", "adamw_torch_fused")


@dataclass(frozen=True)
class OptimizerSetup:
    """How the optimizer will be built, for the callbacks' checks.

    Attributes:
        optimizer_cls: the class given with ``optimizer_cls_and_kwargs`` (``None``: the Trainer's ``--optim``).
        optimizer_kwargs: the kwargs given with it.
        optim: ``TrainingArguments.optim``.
        factory: an ``optimizers_init`` factory builds the optimizer (it makes its own groups).
        ready_made: an optimizer object was passed (``optimizers=``): too late for surgery.
        sets_own_params: ``--optim`` picks its own parameters (GaLore, APOLLO, LOMO, layer-wise ones):
            the groups cannot be shaped.
        shapable_optims: the ``--optim`` values whose groups can be shaped, for messages.
    """

    optimizer_cls: type | None = None
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    optim: str = "adamw_torch"
    factory: bool = False
    ready_made: bool = False
    sets_own_params: bool = False
    shapable_optims: tuple[str, ...] = ()


@dataclass
class FineTuningPlan:
    """What the fine-tuning callbacks plan for, and did to, one model; read when its optimizer groups are built.

    Attributes:
        layer_map: the layout the callbacks use: explicit, or resolved once for this model from the table or
            by discovery.
        novel: names of backbone parameters that are no longer pretrained (re-initialised).
        reinit_layers: indices of the stack layers a callback re-initialises (set by the checks).
        frozen_layers: indices of the stack layers a callback freezes (set by the checks).
        needs_anchors: a callback needs an optimizer that keeps L2-SP anchors.
        checked: the callbacks checked so far, in order (to name them in messages, to refuse repeats).
        prepared: ids of the callbacks whose surgery this model has received.
    """

    layer_map: LayerMap | None = None
    novel: set[str] = field(default_factory=set)
    reinit_layers: set[int] = field(default_factory=set)
    frozen_layers: set[int] = field(default_factory=set)
    needs_anchors: bool = False
    checked: list[FineTuningCallback] = field(default_factory=list)
    prepared: set[int] = field(default_factory=set)


class FineTuningCallback(TrainerCallback):
    """Base class of the callbacks that :class:`TrainerOptimizerInit` runs before building the optimizer.

    ``option`` is how the user asked for the technique (``"--reinit_layers 4"``), used in messages; without it
    the callback names itself (``ReinitCallback(4)``).
    """

    #: Order of surgery among callbacks: re-initialise (0), then freeze (1), then Mixout (2), whatever the
    #: order of ``callbacks=[...]`` — Mixout must know which layers are no longer pretrained.
    surgery_stage: ClassVar[int] = 0
    #: True when the technique needs an optimizer that keeps L2-SP anchors (AdamWL2SP).
    requires_anchors: ClassVar[bool] = False

    option: str | None = None
    _bound: bool = False

    def describe(self) -> str:
        """The technique as the user gave it: ``option`` if set, else ``ClassName(arguments)``."""
        return self.option or f"{type(self).__name__}({self._arguments()})"

    def _arguments(self) -> str:
        return ""

    def bind(self) -> None:
        """Called by :class:`TrainerOptimizerInit` when it takes charge of this callback."""
        self._bound = True

    def check(self, plan: FineTuningPlan, layout: ModelLayout, optimizer: OptimizerSetup) -> None:
        """Refuse what cannot work — before surgery, naming :meth:`describe` and the fix — and record in
        ``plan`` what this callback will do. The base class checks what holds for every technique: one
        callback of a kind, surgery before a ready-made optimizer, shaping with a factory, anchors."""
        name = self.describe()
        repeated = next((other for other in plan.checked if type(other) is type(self)), None)
        if repeated is not None:
            raise ValueError(
                f"{name} and {repeated.describe()}: each fine-tuning technique may be given once."
            )
        if optimizer.ready_made:
            raise ValueError(
                f"{name} must act before the optimizer is built, but `optimizers=` passed a ready-made one. Pass "
                "optimizer_cls_and_kwargs=(cls, kwargs) instead."
            )
        shaping = self.param_group_options()
        if shaping and optimizer.factory:
            raise ValueError(
                f"{name} shapes the optimizer's parameter groups, but the optimizers_init factory builds its own. "
                "Pass optimizer_cls_and_kwargs=(cls, kwargs) instead, or build the groups in the factory with "
                "transformers_fine_tuning.param_groups(model, ...)."
            )
        if shaping and optimizer.sets_own_params:
            chosen = getattr(optimizer.optimizer_cls, "__name__", None) or f"--optim {optimizer.optim}"
            raise ValueError(
                f"{name} shapes the optimizer's parameter groups, but {chosen} chooses its own parameters. Use "
                f"--optim with one of: {', '.join(optimizer.shapable_optims)}; or drop {name}."
            )
        clashing = sorted(set(shaping) & set(optimizer.optimizer_kwargs))
        if clashing:
            raise ValueError(
                f"{name} sets {', '.join(clashing)}, which optimizer_cls_and_kwargs also sets; give each once."
            )
        if self.requires_anchors:
            self._check_anchors(name, optimizer)
            plan.needs_anchors = True
        plan.checked.append(self)

    @staticmethod
    def _check_anchors(name: str, optimizer: OptimizerSetup) -> None:
        if optimizer.optimizer_cls is not None and not issubclass(optimizer.optimizer_cls, AdamWL2SP):
            raise ValueError(
                f"{name} needs an optimizer that keeps L2-SP anchors, but {optimizer.optimizer_cls.__name__} was "
                "given. Use --optim adamw_l2sp (optimizer_cls_and_kwargs=(AdamWL2SP, {...})), or leave the "
                "optimizer unset."
            )
        if optimizer.optimizer_cls is None and optimizer.optim not in ADAMW_OPTIMS:
            raise ValueError(
                f"{name} needs AdamWL2SP, which conflicts with --optim {optimizer.optim}. Use --optim adamw_l2sp "
                "(or drop --optim), or drop the L2-SP option."
            )

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        """Change ``model`` in place before its optimizer is built; record novel parameters in ``plan``."""

    def param_group_options(self) -> dict[str, Any]:
        """Keyword arguments this technique passes to :func:`transformers_fine_tuning.param_groups`."""
        return {}

    def on_train_begin(self, args, state, control, **kwargs):
        if not self._bound:
            raise RuntimeError(
                f"{type(self).__name__} only takes effect under transformers_fine_tuning.TrainerOptimizerInit, "
                "which runs its surgery and shapes the optimizer before training; a plain transformers.Trainer "
                "would silently ignore it. Use TrainerOptimizerInit(...) with the same arguments, or call the "
                "functional form (e.g. reinit_top_layers, param_groups) in your own loop."
            )
