"""Gradient norm per depth: embeddings, each encoder layer, pooler, head.

Mosbach et al. 2021 (Sec. 5, Fig. 4) trace failed fine-tuning runs to vanishing gradients in the lower layers
early in training: the norms of the bottom layers collapse by orders of magnitude while the top layers' do
not. Logging the norm of every depth every N steps shows it while the run is going.
"""

from __future__ import annotations

import torch
from torch import nn

from ..architectures import LayerMap, ModelLayout, model_layout
from .base import DiagnosticCallback

__all__ = ["GradNormCallback", "grad_norms_by_depth"]


def _part(layout: ModelLayout, name: str) -> str:
    """The depth unit of a parameter, named for a log: embeddings, layer_00 …, pooler, head."""
    if layout.is_head(name):
        return "head"
    if layout.is_pooler(name):
        return "pooler"
    index = layout.layer_index(name)
    return "embeddings" if index is None else f"layer_{index:02d}"


@torch.no_grad()
def grad_norms_by_depth(model: nn.Module, layout: ModelLayout | None = None) -> dict[str, float]:
    """The L2 norm of the current gradients of each depth unit, and of all of them (``total``).

    Parameters without a gradient (frozen, unused) are skipped. One host transfer for all norms.
    """
    layout = layout or model_layout(model)
    grads: dict[str, list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            grads.setdefault(_part(layout, name), []).append(param.grad)
    if not grads:
        return {}
    parts = list(grads)
    squared = torch.stack(
        [torch.stack(torch._foreach_norm(grads[part])).float().square().sum() for part in parts]
    )
    values = torch.cat([squared, squared.sum()[None]]).sqrt().tolist()
    return dict(zip([*parts, "total"], values, strict=True))


class GradNormCallback(DiagnosticCallback):
    """Log ``grad_norm/<depth>`` for every depth unit every ``every`` optimizer steps.

    The norms are taken just before the optimizer step, after gradient clipping: clipping scales every
    depth by the same factor, so the ratios between depths — what shows vanishing gradients — are those of the
    raw gradients. The Trainer's own ``grad_norm`` is the total before clipping. A logged step also makes the
    Trainer log its loss at that step, so the values line up in TensorBoard. Modules applied after the stack
    (ModernBERT's ``final_norm``) count with the top layer; under adapters (PEFT) the norms are those of the
    adapters of each layer, the frozen weights having no gradient.

    Args:
        every: log every N optimizer steps (default: ``TrainingArguments.logging_steps``).
        layer_map: layout for an architecture outside the table.
    """

    def __init__(self, every: int | None = None, layer_map: LayerMap | None = None) -> None:
        super().__init__()
        if every is not None and every < 1:
            raise ValueError(f"GradNormCallback: every must be >= 1, got {every}.")
        self.every = every
        self.layer_map = layer_map
        self._layout: ModelLayout | None = None
        self.history: list[dict[str, float]] = []

    def _interval(self, args) -> int:
        return self.every or max(1, int(args.logging_steps))

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        upcoming = state.global_step + 1
        if upcoming % self._interval(args) != 0:
            return
        if self._layout is None:
            self._layout = model_layout(model, self.layer_map)
        norms = grad_norms_by_depth(model, self._layout)
        self.history.append({"step": upcoming, **norms})
        self._pending.update({f"grad_norm/{part}": value for part, value in norms.items()})

    def on_step_end(self, args, state, control, **kwargs):
        if self._pending:
            control.should_log = True
