"""A ``transformers.Trainer`` that builds its optimizer late and runs the fine-tuning callbacks.

Why late: an optimizer built before the Trainer moves the model to its device holds the *old* tensors. On
TPU this trains nothing and reports nothing (transformers issue #18635): the model moves to the XLA device,
the optimizer steps the CPU copies. Building the optimizer inside :meth:`Trainer.create_optimizer` — after
device placement, before distributed wrapping — makes the optimizer's tensors the model's own parameters
on CPU, CUDA and XLA alike, and gives the fine-tuning callbacks their moments: surgery before the optimizer
and its L2-SP anchors exist, group shaping while it is built.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from ..architectures import LayerMap, model_layout
from ..callbacks.base import FineTuningCallback, FineTuningPlan
from ..callbacks.fine_tuning import FreezeCallback, ReinitCallback
from ..diagnostics.base import DiagnosticCallback
from ..optim.adamwl2sp import AdamWL2SP
from ..optim.param_groups import param_groups

__all__ = ["OptimizerFactory", "SchedulerFactory", "TrainerOptimizerInit"]

logger = logging.get_logger(__name__)

OptimizerFactory = Callable[[nn.Module, TrainingArguments], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]

# Keyword arguments that param_groups() turns into per-group settings instead of optimizer defaults.
_GROUP_KEYS = ("lr", "weight_decay", "l2sp")
# ``--optim`` values for which a run that needs anchors may switch to AdamWL2SP without surprising anyone.
_ADAMW_OPTIMS = ("adamw_torch", "adamw_torch_fused")


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

    The layout is resolved once per model (explicit, from the table, or discovered) and used by every
    callback. A PEFT model (e.g. LoRA) works as any other: adapters have the depth of the layer they adapt.

    The optimizer (``optimizer_cls_and_kwargs``, or ``args.optim`` when that is not given) is built on
    :func:`transformers_fine_tuning.param_groups` of the model: ``lr``, ``weight_decay`` and ``l2sp`` —
    from the kwargs, else from ``TrainingArguments`` — become per-group values, adjusted by the callbacks;
    betas and epsilon default to ``args.adam_beta1/2`` and ``args.adam_epsilon``. An
    :class:`~transformers_fine_tuning.L2SPCallback` with no optimizer given selects :class:`AdamWL2SP`.

    With no custom optimizer and no fine-tuning callback it behaves exactly like ``Trainer``.
    """

    def __init__(
        self,
        *args: Any,
        optimizers_init: tuple[OptimizerFactory, SchedulerFactory | None] | None = None,
        layer_map: LayerMap | None = None,
        strict_layer_map: bool = False,
        **kwargs: Any,
    ) -> None:
        self.optimizers_init = optimizers_init
        self.layer_map = layer_map
        self.strict_layer_map = strict_layer_map
        self._plans: weakref.WeakKeyDictionary[nn.Module, FineTuningPlan] = weakref.WeakKeyDictionary()
        super().__init__(*args, **kwargs)
        self._check_fine_tuning_setup()
        self._prepare_model(self.model)
        self._diagnostic_callbacks()

    # ---- fine-tuning callbacks ----------------------------------------------------------------------

    def _fine_tuning_callbacks(self) -> list[FineTuningCallback]:
        callbacks = [cb for cb in self.callback_handler.callbacks if isinstance(cb, FineTuningCallback)]
        return sorted(callbacks, key=lambda cb: cb.surgery_stage)

    def _check_fine_tuning_setup(self) -> None:
        """Reject conflicting options now, before any training time is spent."""
        callbacks = self._fine_tuning_callbacks()
        if self.optimizers_init is not None:
            factory, scheduler_factory = self.optimizers_init
            if not callable(factory) or (scheduler_factory is not None and not callable(scheduler_factory)):
                raise TypeError(
                    "optimizers_init must be (factory(model, args) -> Optimizer, scheduler_factory or None)."
                )
            if self.optimizer_cls_and_kwargs is not None or self.optimizer is not None:
                raise ValueError(
                    "Pass the optimizer once: optimizers_init, optimizer_cls_and_kwargs or optimizers."
                )
        if not callbacks:
            return
        if self.optimizer is not None:
            raise ValueError(
                f"{type(callbacks[0]).__name__} must act before the optimizer is built, but `optimizers=` passed a "
                "ready-made one. Pass optimizer_cls_and_kwargs=(cls, kwargs) instead."
            )
        kinds = [type(cb) for cb in callbacks]
        duplicated = sorted({kind.__name__ for kind in kinds if kinds.count(kind) > 1})
        if duplicated:
            raise ValueError(
                f"Each fine-tuning callback may be given once; got several {', '.join(duplicated)}."
            )
        shaping = [type(cb).__name__ for cb in callbacks if cb.param_group_options()]
        if shaping and self.optimizers_init is not None:
            raise ValueError(
                f"{', '.join(shaping)} shape(s) the optimizer's parameter groups, but the optimizers_init factory "
                "builds its own. Pass optimizer_cls_and_kwargs=(cls, kwargs) instead, or build the groups in "
                "the factory with transformers_fine_tuning.param_groups(model, ...)."
            )
        if self.optimizer_cls_and_kwargs is not None:
            for callback in callbacks:
                clashing = sorted(set(callback.param_group_options()) & set(self.optimizer_cls_and_kwargs[1]))
                if clashing:
                    raise ValueError(
                        f"{type(callback).__name__} sets {', '.join(clashing)}, which optimizer_cls_and_kwargs also "
                        "sets; give each setting once."
                    )
        if any(cb.requires_anchors for cb in callbacks):
            optimizer_cls = self._requested_optimizer_cls()
            if optimizer_cls is not None and not issubclass(optimizer_cls, AdamWL2SP):
                raise ValueError(
                    f"L2SPCallback needs an optimizer that keeps L2-SP anchors, but {optimizer_cls.__name__} was "
                    "given. Use optimizer_cls_and_kwargs=(AdamWL2SP, {...}), or leave the optimizer unset."
                )
            if optimizer_cls is None and self.args.optim not in _ADAMW_OPTIMS:
                raise ValueError(
                    f"L2SPCallback needs AdamWL2SP, which conflicts with --optim {self.args.optim}. Drop --optim "
                    "(or use adamw_torch) so AdamWL2SP is used, or drop the L2-SP option."
                )
        # unsupported architectures fail here, early
        layout = model_layout(self.model, self.layer_map, strict=self.strict_layer_map)
        by_kind = {type(cb): cb for cb in callbacks}
        reinit, freeze = by_kind.get(ReinitCallback), by_kind.get(FreezeCallback)
        if reinit and freeze and reinit.num_layers + freeze.num_layers > layout.num_layers:
            raise ValueError(
                f"ReinitCallback({reinit.num_layers}) and FreezeCallback({freeze.num_layers}) overlap on a "
                f"{layout.num_layers}-layer model: a re-initialised layer would stay frozen at its random values."
            )

    def _requested_optimizer_cls(self) -> type[torch.optim.Optimizer] | None:
        if self.optimizer_cls_and_kwargs is not None:
            return self.optimizer_cls_and_kwargs[0]
        return None

    # ---- diagnostic callbacks: the loss of every step in, their values into the Trainer's logs -----------

    def _diagnostic_callbacks(self) -> list[DiagnosticCallback]:
        callbacks = [cb for cb in self.callback_handler.callbacks if isinstance(cb, DiagnosticCallback)]
        for callback in callbacks:
            callback._bound_to_trainer = True
        return callbacks

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        """The Trainer's step; its loss also goes to the diagnostic callbacks that read per-step losses."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        for callback in self._diagnostic_callbacks():
            if callback.needs_step_loss:
                callback.observe_loss(loss)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's log, with the diagnostic callbacks' pending values merged in (so report_to gets them)."""
        for callback in self._diagnostic_callbacks():
            logs.update(callback.pop_logs())
        super().log(logs, start_time)

    def _prepare_model(self, model: nn.Module) -> FineTuningPlan:
        """Run every fine-tuning callback's surgery on ``model`` once, in stage order."""
        plan = self._plans.get(model)
        callbacks = self._fine_tuning_callbacks()
        if plan is None:
            layer_map = self.layer_map
            if callbacks:  # resolved once (table, explicit or discovered), explicit from here on
                layer_map = model_layout(model, layer_map, strict=self.strict_layer_map).layer_map
            plan = self._plans[model] = FineTuningPlan(layer_map=layer_map)
        for callback in callbacks:
            callback._bound_to_trainer = True
            if id(callback) not in plan.prepared:
                callback.prepare_model(model, plan)
                plan.prepared.add(id(callback))
        return plan

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """Build a fresh model with ``model_init`` and give it the fine-tuning surgery again."""
        model = super().call_model_init(trial)
        if hasattr(self, "callback_handler"):  # during Trainer.__init__, __init__ prepares it afterwards
            self._prepare_model(model)
        return model

    # ---- optimizer and scheduler --------------------------------------------------------------------

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Build the optimizer from fine-tuning parameter groups, now that the model is on its device."""
        self._diagnostic_callbacks()  # bind callbacks added after construction too
        callbacks = self._fine_tuning_callbacks()
        takes_over = (
            callbacks or self.optimizers_init is not None or self._requested_optimizer_cls() is AdamWL2SP
        )
        if self.optimizer is None and takes_over:
            opt_model = self.model if model is None else model
            plan = self._prepare_model(opt_model)
            if self.optimizers_init is not None:
                self.optimizer = self.optimizers_init[0](opt_model, self.args)
            else:
                optimizer_cls, kwargs = self._optimizer_cls_and_kwargs(opt_model, callbacks)
                group_options = {key: kwargs.pop(key) for key in _GROUP_KEYS if key in kwargs}
                base_lr = group_options.pop("lr", self.args.learning_rate)
                group_options.setdefault("weight_decay", self.args.weight_decay)
                for callback in callbacks:
                    group_options.update(callback.param_group_options())
                groups = param_groups(
                    opt_model, lr=base_lr, novel=plan.novel, layer_map=plan.layer_map, **group_options
                )
                self.optimizer = optimizer_cls(groups, **kwargs)
            logger.info(
                "Optimizer groups: %s",
                [(g.get("name"), len(g["params"]), g["lr"]) for g in self.optimizer.param_groups],
            )
        return super().create_optimizer(model)

    def _optimizer_cls_and_kwargs(
        self, model: nn.Module, callbacks: list[FineTuningCallback]
    ) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
        """The optimizer class and its kwargs: the user's, else AdamWL2SP when anchors are needed, else args.optim's."""
        args = self.args
        if self.optimizer_cls_and_kwargs is not None:
            optimizer_cls, user_kwargs = self.optimizer_cls_and_kwargs
        elif any(cb.requires_anchors for cb in callbacks):
            optimizer_cls, user_kwargs = AdamWL2SP, {}
        else:
            optimizer_cls, user_kwargs = self.get_optimizer_cls_and_kwargs(args, model)
        defaults = {
            "lr": args.learning_rate,
            "betas": (args.adam_beta1, args.adam_beta2),
            "eps": args.adam_epsilon,
        }
        accepted = inspect.signature(optimizer_cls).parameters
        kwargs = {key: value for key, value in defaults.items() if key in accepted}
        kwargs.update(user_kwargs)
        return optimizer_cls, kwargs

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """Use the ``optimizers_init`` scheduler factory when one was given, else the Trainer's scheduler."""
        scheduler_factory = self.optimizers_init[1] if self.optimizers_init is not None else None
        if self.lr_scheduler is None and scheduler_factory is not None:
            self.lr_scheduler = scheduler_factory(optimizer or self.optimizer, num_training_steps)
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)
