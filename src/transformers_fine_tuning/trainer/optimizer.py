"""The fine-tuning optimizer: one function from a model, its ``TrainingArguments`` and the fine-tuning callbacks.

:class:`~transformers_fine_tuning.TrainerOptimizerInit` calls :func:`build_fine_tuning_optimizer` when it creates
its optimizer; call it yourself for a plain ``Trainer`` (``optimizers=(build_fine_tuning_optimizer(...), None)``
once the model is on its device) or your own loop. The optimizer class is the user's choice —
``optimizer_cls_and_kwargs``, else :class:`~transformers_fine_tuning.AdamWL2SP` when a callback needs L2-SP
anchors, else what ``--optim`` names (``Trainer.get_optimizer_cls_and_kwargs``) — and its parameter groups are
:func:`~transformers_fine_tuning.param_groups` of the model, shaped by the callbacks (LLRD, L2-SP) and by the plan
of their surgery (re-initialised parameters are novel).

Some ``--optim`` values choose their own parameters (GaLore and APOLLO pick the Linear weights they project,
LOMO and AdaLomo fuse the update into the backward pass, the layer-wise ones keep one optimizer per parameter),
as do optimizer factories given with ``optimizer_cls_and_kwargs`` (Muon, Dion, which split the model themselves):
their groups cannot be shaped. With them the surgery callbacks (re-init, freezing, Mixout) work — the
Trainer builds the optimizer its own way on the changed model — and the shaping ones are refused at
construction, with the list of values that work (:data:`OWN_PARAMETER_OPTIMS`).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer_optimizer import is_optimizer_factory
from transformers.training_args import OptimizerNames

from ..architectures import LayerMap
from ..optim.adamwl2sp import AdamWL2SP
from ..optim.param_groups import param_groups
from ..techniques.base import FineTuningCallback, FineTuningPlan, OptimizerSetup, prepare_fine_tuning

__all__ = ["GROUP_KEYS", "OWN_PARAMETER_OPTIMS", "build_fine_tuning_optimizer", "optimizer_setup"]

GROUP_KEYS = ("lr", "weight_decay", "l2sp")
"""Optimizer keyword arguments that become per-group values of :func:`param_groups` instead of defaults."""

OWN_PARAMETER_OPTIMS = frozenset(
    name.value
    for name in OptimizerNames
    if name.value.startswith(("galore", "apollo")) or "lomo" in name.value
)
"""``--optim`` values whose optimizer chooses its own parameters (their groups cannot be shaped)."""


def optimizer_setup(
    args: TrainingArguments,
    *,
    optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None = None,
    factory: bool = False,
    ready_made: bool = False,
) -> OptimizerSetup:
    """How the optimizer will be built, as the callbacks' checks need to know it."""
    optim = str(getattr(args.optim, "value", args.optim))
    optimizer_cls, optimizer_kwargs = optimizer_cls_and_kwargs or (None, {})
    return OptimizerSetup(
        optimizer_cls=optimizer_cls,
        optimizer_kwargs=dict(optimizer_kwargs),
        optim=optim,
        factory=factory,
        ready_made=ready_made,
        sets_own_params=(optimizer_cls is None and not factory and optim in OWN_PARAMETER_OPTIMS)
        or (optimizer_cls is not None and is_optimizer_factory(optimizer_cls)),
        shapable_optims=tuple(sorted({name.value for name in OptimizerNames} - OWN_PARAMETER_OPTIMS)),
    )


#: The plans of the models prepared by :func:`build_fine_tuning_optimizer` called by hand: surgery runs once per
#: model and callback, however often the optimizer is rebuilt.
_PLANS: weakref.WeakKeyDictionary[nn.Module, FineTuningPlan] = weakref.WeakKeyDictionary()


def build_fine_tuning_optimizer(
    model: nn.Module,
    args: TrainingArguments,
    callbacks: Sequence[FineTuningCallback] = (),
    *,
    optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None = None,
    plan: FineTuningPlan | None = None,
    layer_map: LayerMap | None = None,
    novel: Sequence[str] = (),
) -> torch.optim.Optimizer:
    """The optimizer of a fine-tuning run (see the module docstring).

    Called by hand (no ``plan``: a plain ``Trainer``'s ``optimizers=(build_fine_tuning_optimizer(model, args,
    callbacks), None)``, or your own loop), it first runs the callbacks' checks and surgery on ``model`` — once
    per model and callback (re-initialisation, freezing, Mixout, NoisyTune change the model here) — so every
    route gives the same model and groups. Callbacks that act while the model trains (R3F's loss term, weight
    averaging, WiSE-FT) are refused there, naming the route that runs them. ``layer_map`` and ``novel``: as for
    :class:`~transformers_fine_tuning.TrainerOptimizerInit`.

    ``lr``, ``weight_decay`` and ``l2sp`` — from ``optimizer_cls_and_kwargs``, else from ``args`` — become
    per-group values, adjusted by the callbacks' :meth:`~FineTuningCallback.param_group_options`; betas and ε
    default to ``args.adam_beta1/2`` and ``args.adam_epsilon`` where the class takes them. ``plan``: what the
    callbacks' surgery did (:class:`~transformers_fine_tuning.TrainerOptimizerInit` keeps one per model). When
    surgery perturbed pretrained parameters (NoisyTune), AdamWL2SP's anchors are their clean values from
    ``plan.anchors`` (unless ``anchors=`` is given), which is then emptied: the optimizer holds its own copy.

    Raises:
        ValueError: ``--optim`` chooses its own parameters (:data:`OWN_PARAMETER_OPTIMS`) — build it the
            Trainer's way, no fine-tuning groups are needed then unless a callback shapes them; a group value the
            optimizer class does not take (``l2sp`` on ``torch.optim.AdamW``); a callback that acts while the
            model trains, called by hand.
    """
    if plan is None:
        plan = _prepare_by_hand(model, args, callbacks, optimizer_cls_and_kwargs, layer_map, novel)
    optimizer_cls, kwargs = _optimizer_cls_and_kwargs(model, args, callbacks, optimizer_cls_and_kwargs)
    group_options = {key: kwargs.pop(key) for key in GROUP_KEYS if key in kwargs}
    base_lr = group_options.pop("lr", args.learning_rate)
    group_options.setdefault("weight_decay", args.weight_decay)
    for callback in callbacks:
        group_options.update(callback.param_group_options())
    groups = param_groups(model, lr=base_lr, novel=plan.novel, layer_map=plan.layer_map, **group_options)
    _check_group_keys(optimizer_cls, groups)
    clean = plan.anchors and isinstance(optimizer_cls, type) and issubclass(optimizer_cls, AdamWL2SP)
    if clean and "anchors" not in kwargs:
        kwargs["anchors"] = {
            name: plan.anchors.get(name, param)
            for group in groups
            if group["l2sp"] > 0
            for name, param in zip(group["param_names"], group["params"], strict=True)
        }
    optimizer = optimizer_cls(groups, **kwargs)
    plan.anchors.clear()
    return optimizer


def _prepare_by_hand(
    model: nn.Module,
    args: TrainingArguments,
    callbacks: Sequence[FineTuningCallback],
    optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None,
    layer_map: LayerMap | None,
    novel: Sequence[str],
) -> FineTuningPlan:
    """Checks and surgery for a call by hand, once per model (:data:`_PLANS`)."""
    during = [callback.describe() for callback in callbacks if not callback.needs_optimizer_build]
    if during:
        raise ValueError(
            f"{', '.join(during)} act while the model trains (a loss term, the weights evaluations see, a change "
            "after training), which an optimizer cannot do. Pass them to TrainerOptimizerInit(callbacks=[...]), "
            "or use their functional forms in your own loop (r3f_term, WeightAverage, wise_ft_interpolate)."
        )
    setup = optimizer_setup(args, optimizer_cls_and_kwargs=optimizer_cls_and_kwargs)
    plan = prepare_fine_tuning(
        model, list(callbacks), setup, plan=_PLANS.get(model), layer_map=layer_map, novel=tuple(novel)
    )
    _PLANS[model] = plan
    return plan


def _check_group_keys(optimizer_cls: type, groups: list[dict[str, Any]]) -> None:
    """Refuse a per-group value the optimizer class does not take (it would ignore it without a word): L2-SP's
    ``l2sp`` on anything but AdamWL2SP, ``weight_decay`` on an optimizer without one."""
    try:
        parameters = inspect.signature(optimizer_cls).parameters
    except (TypeError, ValueError):  # a factory or builtin without a signature: nothing to check against
        return
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    for key, unused in (("l2sp", 0.0), ("weight_decay", 0.0)):
        if key in parameters:
            continue
        if any(group.get(key, unused) != unused for group in groups):
            fix = (
                "L2-SP needs optimizer_cls_and_kwargs=(transformers_fine_tuning.AdamWL2SP, {...})"
                if key == "l2sp"
                else "set weight_decay to 0, or use an optimizer that takes it"
            )
            raise ValueError(
                f"{optimizer_cls.__name__} takes no {key!r}, but the fine-tuning groups set it: it would be "
                f"ignored. {fix[0].upper()}{fix[1:]}."
            )


def _optimizer_cls_and_kwargs(
    model: nn.Module,
    args: TrainingArguments,
    callbacks: Sequence[FineTuningCallback],
    chosen: tuple[type, dict[str, Any]] | None,
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The user's class and kwargs, else AdamWL2SP when anchors are needed, else ``args.optim``'s."""
    if chosen is not None:
        optimizer_cls, user_kwargs = chosen
    elif any(callback.requires_anchors for callback in callbacks):
        optimizer_cls, user_kwargs = AdamWL2SP, {}
    else:
        setup = optimizer_setup(args)
        if setup.sets_own_params:
            raise ValueError(
                f"--optim {setup.optim} chooses its own parameters: no fine-tuning groups can be given to it. "
                f"Use one of: {', '.join(setup.shapable_optims)}."
            )
        return Trainer.get_optimizer_cls_and_kwargs(args, model)  # with the Trainer's own lr, betas, eps
    return optimizer_cls, {**_adam_defaults(optimizer_cls, args), **user_kwargs}


def _adam_defaults(optimizer_cls: type, args: TrainingArguments) -> dict[str, Any]:
    """``lr``, and Adam's ``betas`` and ``eps`` from ``args`` where the class takes them in Adam's form (a pair,
    a number: not Adafactor's pair of ε)."""
    parameters = inspect.signature(optimizer_cls).parameters
    defaults: dict[str, Any] = {"lr": args.learning_rate} if "lr" in parameters else {}
    betas, eps = parameters.get("betas"), parameters.get("eps")
    if betas is not None and isinstance(betas.default, tuple) and len(betas.default) == 2:
        defaults["betas"] = (args.adam_beta1, args.adam_beta2)
    if eps is not None and isinstance(eps.default, float):
        defaults["eps"] = args.adam_epsilon
    return defaults
