"""A ``transformers.Trainer`` that builds its optimizer late and runs the fine-tuning callbacks.

Why late: an optimizer built before the Trainer moves the model to its device holds the *old* tensors. On
TPU this trains nothing and reports nothing (transformers issue #18635): the model moves to the XLA device,
the optimizer steps the CPU copies. Building the optimizer inside :meth:`Trainer.create_optimizer` — after
device placement, before distributed wrapping — makes the optimizer's tensors the model's own parameters
on CPU, CUDA and XLA alike, and gives the fine-tuning callbacks their moments: surgery before the optimizer
and its L2-SP anchors exist, group shaping while it is built — and, while and after the model trains, the terms
they add to the loss, the weights evaluations see, the state checkpoints carry, a last change after training.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from ..architectures import LayerMap, remember_loaded_parameters
from ..diagnostics.base import DiagnosticCallback
from ..optim.adamwl2sp import AdamWL2SP
from ..techniques.base import (
    FineTuningCallback,
    FineTuningPlan,
    LossTermCallback,
    OptimizerSetup,
    in_registry_order,
    prepare_fine_tuning,
)
from .optimizer import build_fine_tuning_optimizer, optimizer_setup

__all__ = ["CALLBACK_STATE_KEY", "OptimizerFactory", "SchedulerFactory", "TrainerOptimizerInit"]

logger = logging.get_logger(__name__)

OptimizerFactory = Callable[[nn.Module, TrainingArguments], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]

CALLBACK_STATE_KEY = "fine_tuning_callbacks"
"""The entry of the optimizer's state dict (``optimizer.pt``) that holds the callbacks' checkpoint states."""


def _without_unusable_hub_kernels(model: nn.Module, device: torch.device) -> None:
    """Turn the Hub's kernels off where they cannot be used, while the model is still on the host.

    transformers 5.25 kernelizes every ``from_pretrained`` model by default (``use_kernels``): at each
    ``model.train()`` and ``model.eval()`` it fetches kernels from the Hub for the layers that have them. Two places
    cannot use them, and both fail late:

    * an XLA device: the kernels library refuses it at the first ``model.train()`` ("Unsupported device type
      'xla'"), as does turning them off once the model is there; the kernels run nowhere on XLA.
    * an offline Hub (``HF_HUB_OFFLINE``) on a GPU: the first evaluation, after a whole epoch of training, fails
      ("Version 1 of 'kernels-community/activation' is not available in the local cache"; seen on an H200).
      Exporting ``USE_HUB_KERNELS=1`` keeps them, for kernels cached while online.
    """
    if not getattr(model, "use_kernels", False):
        return
    offline = hub_constants.HF_HUB_OFFLINE and "USE_HUB_KERNELS" not in os.environ
    if device.type == "xla" or offline:
        model.use_kernels = False


class TrainerOptimizerInit(Trainer):
    """``transformers.Trainer`` whose optimizer is built from fine-tuning parameter groups, late.

    Accepts every ``Trainer`` argument unchanged, plus:

    Args:
        optimizers_init: ``(factory, scheduler_factory_or_None)``: ``factory(model, args) -> Optimizer`` is
            called when the Trainer creates its optimizer, with the model already on its device;
            ``scheduler_factory(optimizer, num_training_steps) -> LRScheduler``, if given, replaces the
            Trainer's scheduler. The alternative is the Trainer's own
            ``optimizer_cls_and_kwargs=(AdamWL2SP, {...})``, which also lets the callbacks shape the groups.
        layer_map: layout of an architecture outside :data:`transformers_fine_tuning.LAYER_MAPS` (overrides
            the map discovered from the model).
        strict_layer_map: refuse a model type outside the table (with fine-tuning callbacks) instead of
            discovering its layout.
        novel: names (or module prefixes) of parameters with no pretrained value beyond those the model's
            loading record gives (a head of your own loaded by hand): no L2-SP anchor, no Mixout, no NoisyTune,
            weight decay toward zero.

    The layout is resolved once per model (explicit, from the table, or discovered) and used by every
    callback. A PEFT model (e.g. LoRA) works as any other: adapters have the depth of the layer they adapt.

    The Trainer only runs the fine-tuning callbacks: each checks itself against the model's layout, the
    optimizer setup and the callbacks before it (:meth:`FineTuningCallback.check`, at construction, before any
    surgery), then does its surgery, per model. The optimizer is
    :func:`~transformers_fine_tuning.build_fine_tuning_optimizer` of the model — the same function a plain
    ``Trainer`` or your own loop can call. An ``--optim`` that chooses its own parameters (GaLore, APOLLO, LOMO)
    is built the Trainer's way on the changed model, and refused with a callback that shapes the groups.

    While and after training it runs their other hooks: :class:`LossTermCallback` terms are added to the loss in
    :meth:`compute_loss` and logged (``loss_term/<name>``); every evaluation loop runs inside the callbacks'
    :meth:`~FineTuningCallback.evaluation_context`; their :meth:`~FineTuningCallback.checkpoint_state` travels in
    the optimizer's state dict (:data:`CALLBACK_STATE_KEY`, so in every checkpoint's ``optimizer.pt``); and
    :meth:`~FineTuningCallback.after_train` runs once ``train()`` is done.

    With no custom optimizer and no fine-tuning callback it behaves exactly like ``Trainer``.
    """

    def __init__(
        self,
        *args: Any,
        optimizers_init: tuple[OptimizerFactory, SchedulerFactory | None] | None = None,
        layer_map: LayerMap | None = None,
        strict_layer_map: bool = False,
        novel: tuple[str, ...] | list[str] = (),
        **kwargs: Any,
    ) -> None:
        self.optimizers_init = optimizers_init
        self.layer_map = layer_map
        self.strict_layer_map = strict_layer_map
        self.novel = tuple(novel)
        model = kwargs.get("model", args[0] if args else None)
        if isinstance(model, nn.Module):  # before the Trainer moves it: an XLA move drops the loading marks
            remember_loaded_parameters(model)
        self._plans: weakref.WeakKeyDictionary[nn.Module, FineTuningPlan] = weakref.WeakKeyDictionary()
        self._diagnostics: list[DiagnosticCallback] = []
        self._loss_terms: list[LossTermCallback] = []
        self._hooked_optimizer: torch.optim.Optimizer | None = None
        self._scheduler_from_factory = False
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if isinstance(model, nn.Module) and isinstance(training_args, TrainingArguments):
            _without_unusable_hub_kernels(model, training_args.device)
        super().__init__(*args, **kwargs)
        self._check_optimizer_inputs()
        self._bind_callbacks()
        self._prepare_model(self.model)

    # ---- the callbacks: bound once, fine-tuning ones checked and run per model ------------------------------

    def _bind_callbacks(self) -> None:
        """Tell the package's callbacks that this Trainer feeds them; keep the diagnostic ones at hand."""
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, (FineTuningCallback, DiagnosticCallback)):
                callback.bind()
        self._diagnostics = [
            cb for cb in self.callback_handler.callbacks if isinstance(cb, DiagnosticCallback)
        ]
        self._loss_terms = [cb for cb in self._fine_tuning_callbacks() if isinstance(cb, LossTermCallback)]

    def add_callback(self, callback: Any) -> None:
        super().add_callback(callback)
        self._bind_callbacks()

    def pop_callback(self, callback: Any) -> Any:
        popped = super().pop_callback(callback)
        self._bind_callbacks()
        return popped

    def remove_callback(self, callback: Any) -> None:
        super().remove_callback(callback)
        self._bind_callbacks()

    def _fine_tuning_callbacks(self) -> list[FineTuningCallback]:
        callbacks = [cb for cb in self.callback_handler.callbacks if isinstance(cb, FineTuningCallback)]
        return in_registry_order(callbacks)

    def _check_optimizer_inputs(self) -> None:
        """The Trainer's own inputs: one way to give the optimizer, a factory that is callable."""
        if self.optimizers_init is None:
            return
        factory, scheduler_factory = self.optimizers_init
        if not callable(factory) or (scheduler_factory is not None and not callable(scheduler_factory)):
            raise TypeError(
                "optimizers_init must be (factory(model, args) -> Optimizer, scheduler_factory or None)."
            )
        if self.optimizer_cls_and_kwargs is not None or self.optimizer is not None:
            raise ValueError(
                "Pass the optimizer once: optimizers_init, optimizer_cls_and_kwargs or optimizers."
            )

    def _optimizer_setup(self) -> OptimizerSetup:
        return optimizer_setup(
            self.args,
            optimizer_cls_and_kwargs=self.optimizer_cls_and_kwargs,
            factory=self.optimizers_init is not None,
            ready_made=self.optimizer is not None,
        )

    def _prepare_model(self, model: nn.Module) -> FineTuningPlan:
        """Check every fine-tuning callback against ``model`` and run its surgery, once per model, in stage
        order: conflicts fail here, at construction, before anything is changed or trained."""
        plan = prepare_fine_tuning(
            model,
            self._fine_tuning_callbacks(),
            self._optimizer_setup(),
            plan=self._plans.get(model),
            layer_map=self.layer_map,
            strict=self.strict_layer_map,
            novel=self.novel,
            trainer=self,
        )
        self._plans[model] = plan
        return plan

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """Build a fresh model with ``model_init`` and give it the fine-tuning surgery again."""
        model = super().call_model_init(trial)
        remember_loaded_parameters(model)
        if hasattr(self, "callback_handler"):  # during Trainer.__init__, __init__ prepares it afterwards
            self._prepare_model(model)
        return model

    # ---- diagnostic callbacks: the loss of every step in, their values into the Trainer's logs -----------

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        """The Trainer's step; its loss also goes to the diagnostic callbacks that read per-step losses."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        for callback in self._diagnostics:
            if callback.needs_step_loss:
                callback.observe_loss(loss)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's log, with the diagnostic callbacks' pending values and, beside a training loss, the loss
        terms' means since the last one (``loss_term/<name>``, averaged over processes) merged in, so report_to
        gets them."""
        for callback in self._diagnostics:
            logs.update(callback.pop_logs())
        if "loss" in logs:
            for callback in self._loss_terms:
                mean = callback.pop_term_mean()
                if mean is not None:
                    if self.args.world_size > 1:
                        mean = self.accelerator.reduce(mean, reduction="mean")
                    logs[f"loss_term/{callback.term_name}"] = float(mean.item())
        super().log(logs, start_time)

    # ---- loss terms, evaluation weights, after training: the callbacks' hooks while and after it trains ------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """The Trainer's loss; in training, plus the :class:`LossTermCallback` terms.

        Each term enters as ``term − term.detach()``: the value returned stays the task loss (what ``loss`` logs
        and the diagnostics test), the gradient is that of the task loss plus the terms.
        """
        if not self._loss_terms or not model.training:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        unwrapped = self.accelerator.unwrap_model(model)
        for callback in self._loss_terms:
            term = callback.loss_term(unwrapped, inputs, outputs, loss)
            if term is not None:
                callback.observe_term(term)
                loss = loss + (term - term.detach())
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        """The Trainer's evaluation loop (of ``evaluate`` and ``predict``), inside the fine-tuning callbacks'
        evaluation contexts (weight averaging evaluates its average)."""
        with contextlib.ExitStack() as stack:
            for callback in self._fine_tuning_callbacks():
                stack.enter_context(callback.evaluation_context(self.model))
            return super().evaluation_loop(*args, **kwargs)

    # ---- optimizer and scheduler --------------------------------------------------------------------

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Build the optimizer from fine-tuning parameter groups, now that the model is on its device; its state
        dict carries the callbacks' checkpoint states."""
        callbacks = self._fine_tuning_callbacks()
        setup = self._optimizer_setup()
        shaped = bool(callbacks) and not setup.sets_own_params  # else the Trainer's own, on the changed model
        if self.optimizer is None and (shaped or setup.factory or setup.optimizer_cls is AdamWL2SP):
            opt_model = self.model if model is None else model
            plan = self._prepare_model(opt_model)
            if self.optimizers_init is not None:
                self.optimizer = self.optimizers_init[0](opt_model, self.args)
            else:
                self.optimizer = build_fine_tuning_optimizer(
                    opt_model,
                    self.args,
                    callbacks,
                    optimizer_cls_and_kwargs=self.optimizer_cls_and_kwargs,
                    plan=plan,
                )
            logger.info(
                "Optimizer groups: %s",
                [(g.get("name"), len(g["params"]), g["lr"]) for g in self.optimizer.param_groups],
            )
        optimizer = super().create_optimizer(model)
        inner = getattr(optimizer, "optimizer", optimizer)  # without Accelerate's wrapper, on a second call
        if inner is not None and inner is not self._hooked_optimizer:
            inner.register_state_dict_post_hook(self._save_callback_states)
            inner.register_load_state_dict_pre_hook(self._load_callback_states)
            self._hooked_optimizer = inner
        return optimizer

    def _save_callback_states(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
        states = {
            type(callback).__name__: state
            for callback in self._fine_tuning_callbacks()
            if (state := callback.checkpoint_state()) is not None
        }
        if states:
            state_dict[CALLBACK_STATE_KEY] = states

    def _load_callback_states(self, optimizer: torch.optim.Optimizer, state_dict: dict[str, Any]) -> None:
        states = state_dict.pop(CALLBACK_STATE_KEY, None) or {}  # a shallow copy: the caller's dict keeps it
        for callback in self._fine_tuning_callbacks():
            callback.load_checkpoint_state(states.get(type(callback).__name__))

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """The Trainer's train, then each fine-tuning callback's :meth:`~FineTuningCallback.after_train`; a
        scheduler from the ``optimizers_init`` factory is rebuilt for each call, as the Trainer rebuilds its own
        (the number of steps may differ)."""
        if self._scheduler_from_factory:
            self.lr_scheduler, self._scheduler_from_factory = None, False
        output = super().train(*args, **kwargs)
        for callback in self._fine_tuning_callbacks():
            callback.after_train(self)
        return output

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """Use the ``optimizers_init`` scheduler factory when one was given, else the Trainer's scheduler."""
        scheduler_factory = self.optimizers_init[1] if self.optimizers_init is not None else None
        if self.lr_scheduler is None and scheduler_factory is not None:
            self.lr_scheduler = scheduler_factory(optimizer or self.optimizer, num_training_steps)
            self._scheduler_from_factory = True
        return super().create_scheduler(num_training_steps, optimizer)
