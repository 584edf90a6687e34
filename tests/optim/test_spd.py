"""Selective Projection Decay (Tian et al. 2024, Alg. 1) in AdamWL2SP: equal to a hand-written reference on every
kernel, the projection only where the condition holds, and its refusals."""

from __future__ import annotations

import math

import pytest
import torch

from transformers_fine_tuning import AdamWL2SP
from transformers_fine_tuning.build import optimizer_cls_and_kwargs

LR, BETAS, EPS, STRENGTH = 0.05, (0.9, 0.999), 1e-8, 0.5


def _reference(params, grads_per_step, anchors, *, bias_correction: bool):
    """Adam without weight decay, then SPD per tensor, written from the paper's algorithm, in float64."""
    params = [p.double().clone() for p in params]
    anchors = [a.double() for a in anchors]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    projected = []
    for t, grads in enumerate(grads_per_step, start=1):
        for i, grad in enumerate(grads):
            grad = grad.double()
            m[i] = BETAS[0] * m[i] + (1 - BETAS[0]) * grad
            v[i] = BETAS[1] * v[i] + (1 - BETAS[1]) * grad * grad
            if bias_correction:
                update = (
                    (LR / (1 - BETAS[0] ** t)) * m[i] / (v[i].sqrt() / math.sqrt(1 - BETAS[1] ** t) + EPS)
                )
            else:
                update = LR * m[i] / (v[i].sqrt() + EPS)
            new = params[i] - update
            condition = -torch.sum(grad * (params[i] - anchors[i]))
            if condition < 0:
                curr, prev = torch.norm(new - anchors[i]), torch.norm(params[i] - anchors[i])
                ratio = min(max(((curr - prev) / curr).item(), 0.0), 1.0)
                new = new - STRENGTH * ratio * (new - anchors[i])
                projected.append((t, i, ratio))
            params[i] = new
    return params, projected


def _problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    anchors = [
        torch.randn(7, 5, generator=generator),
        torch.randn(11, generator=generator),
        torch.randn(3, 3, 2),
    ]
    params = [a + 0.1 * torch.randn(a.shape, generator=generator) for a in anchors]
    # gradients that push away from the anchor on some steps and toward it on others
    grads = [
        [
            (1 if (t + i) % 3 else -1) * (p - a) + 0.05 * torch.randn(p.shape, generator=generator)
            for i, (p, a) in enumerate(zip(params, anchors, strict=True))
        ]
        for t in range(6)
    ]
    return params, anchors, grads


KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {"foreach": False}}


@pytest.mark.parametrize("bias_correction", [True, False], ids=["corrected", "bertadam"])
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_selective_projection_decay_equals_the_reference_on_every_kernel(kernel, bias_correction):
    start, anchors, grads_per_step = _problem()
    expected, projected = _reference(start, grads_per_step, anchors, bias_correction=bias_correction)
    assert projected and len(projected) < len(grads_per_step) * len(start)  # both branches are exercised
    assert any(0 < ratio < 1 for *_, ratio in projected)
    params = [torch.nn.Parameter(p.clone()) for p in start]
    optimizer = AdamWL2SP(
        [{"params": params, "l2sp": STRENGTH}],
        lr=LR,
        betas=BETAS,
        eps=EPS,
        selective=True,
        bias_correction=bias_correction,
        **KERNELS[kernel],
    )
    for param, anchor in zip(params, anchors, strict=True):  # anchors: the pretrained values, not the start
        optimizer.state[param]["anchor"] = anchor.clone()
    for grads in grads_per_step:
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad.clone()
        optimizer.step()
        for param, grad in zip(params, grads, strict=True):
            assert torch.equal(param.grad, grad)  # no kernel writes to .grad
    for got, want in zip(params, expected, strict=True):
        torch.testing.assert_close(got.detach().double(), want, rtol=1e-5, atol=1e-6)


def test_steps_toward_the_anchor_are_plain_adam():
    """Steps that move toward the anchor (r_t clamps to 0, whatever the condition) leave SPD nothing to do."""
    generator = torch.Generator().manual_seed(3)
    anchor = torch.randn(20, generator=generator)
    start = anchor + torch.randn(20, generator=generator)
    spd, plain = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    selective = AdamWL2SP([{"params": [spd], "l2sp": STRENGTH}], lr=LR, selective=True)
    selective.state[spd]["anchor"] = anchor.clone()
    adam = torch.optim.Adam([plain], lr=LR)
    for _ in range(4):
        for param, optimizer in ((spd, selective), (plain, adam)):
            param.grad = param.detach() - anchor  # descending moves toward the anchor
            optimizer.step()
    torch.testing.assert_close(spd.detach(), plain.detach())


def test_refusals():
    param = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="two forms of the pull"):
        AdamWL2SP([param], l2sp=0.1, selective=True, coupled=True)
    with pytest.raises(ValueError, match=r"Use λ in \(0, 1\]"):
        AdamWL2SP([param], l2sp=2.0, selective=True)


def test_the_job_flag_builds_the_selective_optimizer(tmp_path):
    """--l2sp_selective reaches AdamWL2SP through the job's arguments, and is refused where it cannot apply."""
    from transformers_fine_tuning.arguments import parse_fine_tune_args

    out = ["--output_dir", str(tmp_path)]
    args = parse_fine_tune_args(["--recipe", "spd", *out])
    optimizer_cls, kwargs = optimizer_cls_and_kwargs(args.fine_tuning, args.training.adamw_l2sp)
    assert optimizer_cls is AdamWL2SP and kwargs["selective"] and args.fine_tuning.l2sp_pretrained == 0.5
    for flags, message in [
        (["--optim", "adamw_l2sp", "--l2sp_pretrained", "2", "--l2sp_selective"], r"λ in \(0, 1\], got 2"),
        (
            ["--optim", "adamw_l2sp", "--l2sp_pretrained", "0.5", "--l2sp_selective", "--l2sp_coupled"],
            "give one",
        ),
        (["--l2sp_selective"], "need\\(s\\) --optim adamw_l2sp"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_fine_tune_args([*flags, *out])
