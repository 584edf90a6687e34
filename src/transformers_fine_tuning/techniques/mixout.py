"""Mixout (Lee et al. 2020, "Mixout: Effective Regularization to Finetune Large-scale Pretrained Language Models",
Eq. 2): the layer (:class:`MixoutLinear`), the functions that put it in and take it out of a model
(:func:`apply_mixout`, :func:`strip_mixout`, for any training loop) and the Trainer callback
(:class:`MixoutCallback`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import LayerMap, model_layout
from .base import FineTuningCallback, FineTuningPlan
from .checks import refuse_adapters

__all__ = ["MixoutCallback", "MixoutLinear", "apply_mixout", "strip_mixout"]


class MixoutLinear(nn.Linear):
    """A Linear layer whose weight is mixed toward a target (its pretrained value) during training.

    Mixout (Lee et al. 2020, Eq. 2): each weight element is replaced by its target with probability p, and
    the result is rescaled so that its expectation is the current weight::

        mixout(w; u, p) = ((1 − M) ⊙ w + M ⊙ u − p·u) / (1 − p),   M ~ Bernoulli(p)
                        = u + dropout(w − u, p)

    which is how it is computed. In evaluation mode the layer is a plain Linear. The target (``mixout_target``)
    is a non-persistent buffer: a saved model or checkpoint holds the plain Linear's weight and bias only, so
    it loads in transformers without Mixout (no unexpected keys) and gives the same outputs; a resumed run
    recomputes the target from the pretrained model it starts from, as it was.
    """

    def __init__(self, linear: nn.Linear, p: float, target: Tensor | None = None) -> None:
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        self.weight = linear.weight
        self.bias = linear.bias
        self.p = p
        source = linear.weight if target is None else target
        self.register_buffer("mixout_target", source.detach().clone(), persistent=False)

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return F.linear(input, self.weight, self.bias)
        target = self.mixout_target
        return F.linear(input, target + F.dropout(self.weight - target, self.p, training=True), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


def apply_mixout(
    model: nn.Module, p: float, *, exclude: Iterable[str] = (), layer_map: LayerMap | None = None
) -> list[str]:
    """Replace every pretrained ``nn.Linear`` of the backbone by a :class:`MixoutLinear` toward its weights.

    The task head and the modules whose weight is named in ``exclude`` (e.g. re-initialised layers, which
    have no pretrained value to mix toward) are left as they are. The Linear's parameters are kept — the same
    ``Parameter`` objects — so anything that already holds them stays valid. Costs one copy of the mixed
    weights.

    Refused for a model with adapters (PEFT): the weights it would mix toward their pretrained values are
    frozen, so it would do nothing.

    Returns:
        The names of the replaced modules.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"Mixout probability must be in [0, 1), got {p}.")
    layout = model_layout(model, layer_map)
    refuse_adapters(layout, "apply Mixout to", "mixout")
    excluded = set(exclude)
    replaced = []
    for name, module in list(model.named_modules()):
        if type(module) is not nn.Linear or layout.is_novel(f"{name}.weight") or f"{name}.weight" in excluded:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, MixoutLinear(module, p))
        replaced.append(name)
    return replaced


def strip_mixout(model: nn.Module) -> list[str]:
    """Put a plain ``nn.Linear`` back in place of every :class:`MixoutLinear` (the same parameters, the target
    dropped): for exporting a model trained with Mixout to code that does not import this package. Saving
    needs no stripping — the target is not saved. Returns the names of the restored modules."""
    restored = []
    for name, module in list(model.named_modules()):
        if isinstance(module, MixoutLinear):
            linear = nn.Linear(
                module.in_features, module.out_features, bias=module.bias is not None, device="meta"
            )
            linear.weight, linear.bias = module.weight, module.bias
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, linear)
            restored.append(name)
    return restored


class MixoutCallback(FineTuningCallback):
    """Mixout (Lee et al. 2020): backbone Linear layers mix toward their pretrained weights with probability p.

    See :func:`transformers_fine_tuning.apply_mixout`. Layers re-initialised by a :class:`~.reinit.ReinitCallback`
    have no pretrained weights and are left as they are.
    """

    technique = "mixout"

    def __init__(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"MixoutCallback: p must be in [0, 1), got {p}.")
        self.p = p

    def _arguments(self) -> str:
        return f"{self.p}"

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        apply_mixout(model, self.p, exclude=plan.novel, layer_map=plan.layer_map)
