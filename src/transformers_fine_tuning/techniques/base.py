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

And, for techniques that act while or after the model trains:

4. :meth:`FineTuningCallback.evaluation_context` — the weights every evaluation and prediction sees (weight
   averaging swaps its average in);
5. :meth:`FineTuningCallback.checkpoint_state` / :meth:`~FineTuningCallback.load_checkpoint_state` — tensors
   that travel in every checkpoint (in its ``optimizer.pt``) and come back on ``resume_from_checkpoint``;
6. :meth:`FineTuningCallback.after_train` — a last change to the model once ``train()`` is done (WiSE-FT);
7. :class:`LossTermCallback` — a term added to the training loss (R3F): one protocol,
   :meth:`LossTermCallback.loss_term`, which ``TrainerOptimizerInit.compute_loss`` sums and logs.

The Trainer only runs them, in the registry's order (:attr:`~FineTuningCallback.technique`); each callback brings its own
checks, so a new technique needs no change to the Trainer.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn
from transformers import TrainerCallback

from ..architectures import LayerMap, ModelLayout, model_layout
from ..optim.adamwl2sp import AdamWL2SP
from ..optim.param_groups import names_under
from .registry import EXCLUSIVE, order_of, technique

__all__ = [
    "ADAMW_OPTIMS",
    "FineTuningCallback",
    "FineTuningPlan",
    "LossTermCallback",
    "OptimizerSetup",
    "in_registry_order",
    "keeps_anchors",
    "prepare_fine_tuning",
    "steps_of",
]

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
        needs_anchors: a callback needs an optimizer that keeps L2-SP anchors.
        checked: the callbacks checked so far, in order (to name them in messages, to refuse repeats).
        prepared: ids of the callbacks whose surgery this model has received.
        anchors: explicit L2-SP anchors by parameter name — the clean pretrained values of parameters that
            surgery perturbed (NoisyTune), so that L2-SP pulls toward the pretrained weights, not toward the
            noise; used (and then emptied) when the optimizer is built.
        trainer: the Trainer that runs the plan, for checks that depend on its arguments or data (``None`` when
            the callbacks are run by hand).
    """

    layer_map: LayerMap | None = None
    novel: set[str] = field(default_factory=set)
    reinit_layers: set[int] = field(default_factory=set)
    needs_anchors: bool = False
    checked: list[FineTuningCallback] = field(default_factory=list)
    prepared: set[int] = field(default_factory=set)
    anchors: dict[str, Tensor] = field(default_factory=dict)
    trainer: Any = None


def steps_of(value: float, max_steps: int) -> int:
    """A number of optimizer steps given as ``--warmup_steps`` is: as given from 1 up, below 1 a share of the
    run's ``max_steps`` (rounded down)."""
    return int(value) if value >= 1 else math.floor(value * max_steps)


def keeps_anchors(plan: FineTuningPlan, optimizer: OptimizerSetup) -> bool:
    """Whether the optimizer will hold L2-SP anchors: a callback asks for them, or AdamWL2SP is given with
    ``l2sp > 0``."""
    given = optimizer.optimizer_cls
    return plan.needs_anchors or (
        isinstance(given, type)
        and issubclass(given, AdamWL2SP)
        and float(optimizer.optimizer_kwargs.get("l2sp", 0.0)) > 0.0
    )


class FineTuningCallback(TrainerCallback):
    """Base class of the callbacks that :class:`TrainerOptimizerInit` runs before building the optimizer.

    ``option`` is how the user asked for the technique (``"--reinit_layers 4"``), used in messages; without it
    the callback names itself (``ReinitCallback(4)``).
    """

    #: The registry's name of the technique (:data:`~transformers_fine_tuning.techniques.TECHNIQUES`): its order
    #: among the callbacks whatever the order of ``callbacks=[...]`` (re-initialise, then freeze, then Mixout,
    #: ...), the techniques it excludes and why it cannot act on a model with adapters. ``None``: a technique of
    #: your own, checked and prepared before the registered ones, in the order given.
    technique: ClassVar[str | None] = None
    #: True when the technique needs an optimizer that keeps L2-SP anchors (AdamWL2SP).
    requires_anchors: ClassVar[bool] = False
    #: False for a technique that neither changes the model before its optimizer exists nor shapes its groups
    #: (a loss term, weight averaging, WiSE-FT): it works with a ready-made optimizer (``optimizers=``) too.
    needs_optimizer_build: ClassVar[bool] = True

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
        self._check_registry(name, plan, layout)
        if optimizer.ready_made and self.needs_optimizer_build:
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

    def _check_registry(self, name: str, plan: FineTuningPlan, layout: ModelLayout) -> None:
        """What the registry declares of this technique: another of its exclusive group already given, a model
        with adapters it cannot act on."""
        if self.technique is None:
            return
        entry = technique(self.technique)
        for group in entry.exclusive:
            other = next(
                (cb for cb in plan.checked if cb.technique and group in technique(cb.technique).exclusive),
                None,
            )
            if other is not None:
                raise ValueError(f"{other.describe()} and {name}: {EXCLUSIVE[group]}")
        if entry.with_adapters is not None and layout.adapter_marker is not None:
            raise ValueError(
                f"{name} cannot act on a model with adapters (PEFT): {entry.with_adapters}. Drop one of the two."
            )

    @staticmethod
    def _check_anchors(name: str, optimizer: OptimizerSetup) -> None:
        command_line = name.startswith("--")  # the fine-tune job's flags, else Python
        if optimizer.optimizer_cls is not None and not issubclass(optimizer.optimizer_cls, AdamWL2SP):
            fix = (
                "--optim adamw_l2sp"
                if command_line
                else "optimizer_cls_and_kwargs=(transformers_fine_tuning.AdamWL2SP, {...})"
            )
            raise ValueError(
                f"{name} needs an optimizer that keeps L2-SP anchors, but {optimizer.optimizer_cls.__name__} was "
                f"given. Use {fix}, or leave the optimizer unset."
            )
        if optimizer.optimizer_cls is None and optimizer.optim not in ADAMW_OPTIMS:
            given = (
                f"--optim {optimizer.optim}"
                if command_line
                else f"TrainingArguments(optim={optimizer.optim!r})"
            )
            fix = (
                "--optim adamw_l2sp (or drop --optim)"
                if command_line
                else "optimizer_cls_and_kwargs=(transformers_fine_tuning.AdamWL2SP, {...}) (or leave optim unset)"
            )
            raise ValueError(
                f"{name} needs AdamWL2SP, which conflicts with {given}. Use {fix}, or drop {name}."
            )

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        """Change ``model`` in place before its optimizer is built; record novel parameters in ``plan``."""

    def param_group_options(self) -> dict[str, Any]:
        """Keyword arguments this technique passes to :func:`transformers_fine_tuning.param_groups`."""
        return {}

    def evaluation_context(self, model: nn.Module) -> AbstractContextManager[None]:
        """The weights every evaluation and prediction of ``model`` runs with: entered around each evaluation
        loop (weight averaging swaps its average in and back out). Default: the model as it is."""
        return nullcontext()

    def checkpoint_state(self) -> dict[str, Any] | None:
        """What this technique must keep across a resumed run (tensors, numbers, strings), or ``None``.

        ``TrainerOptimizerInit`` puts it into the optimizer's state dict (torch's state-dict hooks), so every
        checkpoint's ``optimizer.pt`` carries it — on every device and launcher the Trainer saves optimizers
        with — and hands it back to :meth:`load_checkpoint_state` on ``resume_from_checkpoint``."""
        return None

    def load_checkpoint_state(self, state: dict[str, Any] | None) -> None:
        """Take back what :meth:`checkpoint_state` saved (``None``: the checkpoint holds nothing of this
        technique). Called while the optimizer state loads, before ``on_train_begin``."""

    def after_train(self, trainer: Any) -> None:
        """Change the trained model once the Trainer's ``train()`` is done, on every process (WiSE-FT); the
        Trainer is given for evaluation or prediction."""

    def on_train_begin(self, args, state, control, **kwargs):
        if not self._bound:
            raise RuntimeError(
                f"{type(self).__name__} only takes effect under transformers_fine_tuning.TrainerOptimizerInit, "
                "which runs its surgery and shapes the optimizer before training; a plain transformers.Trainer "
                "would silently ignore it. Use TrainerOptimizerInit(...) with the same arguments, or call the "
                "functional form (e.g. reinit_top_layers, param_groups) in your own loop."
            )


def prepare_fine_tuning(
    model: nn.Module,
    callbacks: list[FineTuningCallback],
    optimizer: OptimizerSetup,
    *,
    plan: FineTuningPlan | None = None,
    layer_map: LayerMap | None = None,
    strict: bool = False,
    novel: tuple[str, ...] | list[str] = (),
    trainer: Any = None,
) -> FineTuningPlan:
    """Check every fine-tuning callback against ``model``, then run the surgery of those not run on it yet.

    The one sequence every route runs (:class:`~transformers_fine_tuning.TrainerOptimizerInit`, and
    :func:`~transformers_fine_tuning.build_fine_tuning_optimizer` called by hand): the layout is resolved once
    (explicit, from the table, or discovered) and used by every callback; the checks run in surgery order before
    anything is changed, so a conflict fails before the model is touched; then each callback's surgery, once per
    model. ``plan``: the plan already made for this model (its checks are not repeated).
    """
    callbacks = in_registry_order(callbacks)
    if plan is None:
        plan = FineTuningPlan(layer_map=layer_map, trainer=trainer, novel=_names_under(model, novel))
        if callbacks:
            layout = model_layout(model, layer_map, strict=strict)
            plan.layer_map = layout.layer_map  # resolved once, explicit from here on
            for callback in callbacks:
                callback.check(plan, layout, optimizer)
    for callback in callbacks:
        if id(callback) not in plan.prepared:
            callback.prepare_model(model, plan)
            plan.prepared.add(id(callback))
            callback.bind()
    return plan


def in_registry_order(callbacks: list[FineTuningCallback]) -> list[FineTuningCallback]:
    """``callbacks`` in the order their techniques act (:data:`~transformers_fine_tuning.techniques.TECHNIQUES`),
    the user's own first; callbacks of one place keep their order."""
    return sorted(callbacks, key=lambda callback: order_of(callback.technique))


def _names_under(model: nn.Module, entries: tuple[str, ...] | list[str]) -> set[str]:
    """The parameter names given, or inside the modules named (``"classifier"``); an entry matching nothing is
    refused, naming the model's top-level modules."""
    matched = names_under((name for name, _ in model.named_parameters()), entries)
    unmatched = next((entry for entry, found in matched.items() if not found), None)
    if unmatched is not None:
        children = ", ".join(name for name, _ in model.named_children())
        raise ValueError(
            f"novel={unmatched!r} names no parameter or module of {type(model).__name__} (its modules: {children})."
        )
    return set().union(*matched.values())


class LossTermCallback(FineTuningCallback):
    """A technique that adds a term to the training loss: the one protocol for loss terms (R3F is one).

    ``TrainerOptimizerInit.compute_loss`` calls :meth:`loss_term` after the model's forward pass on every
    training micro-batch and adds what it returns, so a new regulariser needs no change to the Trainer. The
    term enters as ``term − term.detach()``: zero in value, the term's gradient in the backward pass. So the
    loss the Trainer logs (``loss``, ``results.json``'s training-loss history, what the diagnostics test) stays
    the task loss, comparable across recipes, while the gradient is that of the task loss plus the term; the
    term's own value is logged beside it as ``loss_term/<term_name>`` (its mean over the micro-batches since
    the last log, averaged over processes). It is scaled with the task loss (gradient accumulation, several
    GPUs) as the Trainer scales that. Evaluation runs without it (``model.training`` is false there).
    """

    #: The name the term is logged under: ``loss_term/<term_name>``.
    term_name: ClassVar[str] = "term"
    needs_optimizer_build = False
    _term_sum: Tensor | None = None
    _term_count: int = 0

    def loss_term(
        self, model: nn.Module, inputs: dict[str, Any], outputs: Any, loss: Tensor
    ) -> Tensor | None:
        """The term to add to ``loss`` for this micro-batch, or ``None`` to add nothing.

        Args:
            model: the model being trained, without a data-parallel wrapper (a second forward pass through it
                adds no synchronisation of its own; the gradients of both passes are all-reduced together).
            inputs: the batch as the model received it (``labels`` removed if the Trainer took them out).
            outputs: the model's outputs on it (``outputs["logits"]``).
            loss: the task loss the Trainer computed from them.
        """
        raise NotImplementedError

    def observe_term(self, term: Tensor) -> None:
        """Record one micro-batch's term for the log (on its device: no host synchronisation per step)."""
        detached = term.detach().float()
        self._term_sum = detached if self._term_sum is None else self._term_sum + detached
        self._term_count += 1

    def pop_term_mean(self) -> Tensor | None:
        """The mean of the terms recorded since the last call (``None`` if none was), and reset."""
        total, count = self._term_sum, self._term_count
        self._term_sum, self._term_count = None, 0
        return None if total is None else total / count

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self._term_sum, self._term_count = None, 0
