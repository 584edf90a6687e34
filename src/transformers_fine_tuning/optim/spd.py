"""Selective Projection Decay: the pull toward the pretrained weights, only where the update is inconsistent.

Tian, Huang, Wang, Kira & Zhang 2024, "Rethinking Weight Decay for Robust Fine-Tuning of Foundation Models"
(NeurIPS), Alg. 1. L2-SP pulls every pretrained tensor toward θ₀ at every step; SPD pulls a tensor (a "layer")
only when its gradient and its deviation from θ₀ agree — when the loss keeps asking it to move further away — and
then only by the share of its step that moved it away. Per tensor, after the optimizer's own step
θ_{t−1} → θ̃_t, with g_t the (descent) gradient::

    c_t = −g_tᵀ (θ_{t−1} − θ₀)
    if c_t < 0:   r_t = clip( (‖θ̃_t − θ₀‖ − ‖θ_{t−1} − θ₀‖) / ‖θ̃_t − θ₀‖, 0, 1 )
                  θ_t = θ̃_t − λ · r_t · (θ̃_t − θ₀)  =  lerp(θ̃_t, θ₀, λ·r_t)
    else:         θ_t = θ̃_t

λ is not scaled by the learning rate (the ratio r_t already measures this step's move). The projection is a lerp
toward the anchor, as AdamWL2SP's decoupled pull is, so it runs after any of its kernels:
``AdamWL2SP(..., l2sp=λ, selective=True)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SPDState", "spd_before_step", "spd_project"]

SPDState = tuple[list[Tensor], list[Tensor]]
"""Per tensor, before the step: whether the condition c_t < 0 holds (a 0-d bool), and ‖θ_{t−1} − θ₀‖."""


@torch.no_grad()
def spd_before_step(
    params: list[Tensor], grads: list[Tensor], anchors: list[Tensor], *, maximize: bool = False
) -> SPDState:
    """The condition and the deviation's norm of every tensor, from the weights and gradients before the step.

    Computed one tensor at a time in float32 (temporaries the size of the largest tensor, no host
    synchronisation)."""
    conditions, previous = [], []
    for param, grad, anchor in zip(params, grads, anchors, strict=True):
        deviation = param.float() - anchor.float()
        descent = -grad.float() if maximize else grad.float()
        conditions.append(torch.sum(descent * deviation) > 0)  # c_t = −gᵀ(θ − θ₀) < 0
        previous.append(torch.linalg.vector_norm(deviation))
    return conditions, previous


@torch.no_grad()
def spd_project(params: list[Tensor], anchors: list[Tensor], before: SPDState, strength: float) -> None:
    """Pull each tensor whose condition held toward its anchor by λ·r_t (the module docstring), in place."""
    conditions, previous = before
    for param, anchor, condition, prev_norm in zip(params, anchors, conditions, previous, strict=True):
        curr_norm = torch.linalg.vector_norm(param.float() - anchor.float())
        ratio = torch.where(curr_norm > 0, (curr_norm - prev_norm) / curr_norm, torch.zeros_like(curr_norm))
        weight = torch.where(condition, strength * ratio.clamp(0.0, 1.0), torch.zeros_like(ratio))
        param.lerp_(anchor, weight.to(param.dtype))
