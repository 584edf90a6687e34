"""AdamWL2SP: the update rule against a plain reference, the three kernels against each other in every setting
(BERTAdam and coupled L2-SP on the fused kernel included), l2sp=0 against torch.optim.AdamW, anchors in the
state, save/resume, memory."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from transformers_fine_tuning import AdamWL2SP
from transformers_fine_tuning.optim import adamwl2sp


def reference_step(
    theta, anchor, grad, m, v, t, *, lr, beta1, beta2, eps, wd, l2sp, bias_correction, coupled
):
    """One step of the AdamWL2SP update (the class docstring's algorithm), written out on plain float64 tensors,
    element by element."""
    theta, m, v = theta.clone(), m.clone(), v.clone()
    if coupled:
        grad = grad + l2sp * (theta - anchor)
    else:
        theta = theta - lr * l2sp * (theta - anchor)
    theta = theta - lr * wd * theta
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    if bias_correction:
        m_hat = m / (1 - beta1**t)
        denom = torch.sqrt(v) / math.sqrt(1 - beta2**t) + eps
        theta = theta - lr * m_hat / denom
    else:
        theta = theta - lr * m / (torch.sqrt(v) + eps)
    return theta, m, v


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]
"""Where the kernels are checked: CPU everywhere, CUDA where there is a GPU (the same values drawn on the CPU)."""


def _params(seed=0, dtype=torch.float64, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(5, 3), (3,), (2, 2, 2), (1,)]
    return [nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype).to(device)) for shape in shapes]


def _grads(params, step, seed=0):
    generator = torch.Generator().manual_seed(1000 * seed + step)
    return [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]


def _run(optimizer, params, steps, lrs=None):
    for step in range(steps):
        for param, grad in zip(params, _grads(params, step), strict=True):
            param.grad = grad.clone()
        if lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = lrs[step]
        optimizer.step()


KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {"foreach": False}}

SETTINGS = [
    {"l2sp": 0.3, "weight_decay": 0.0, "bias_correction": True, "coupled": False},
    {"l2sp": 0.3, "weight_decay": 0.01, "bias_correction": True, "coupled": False},
    {"l2sp": 0.3, "weight_decay": 0.01, "bias_correction": False, "coupled": False},
    {"l2sp": 0.3, "weight_decay": 0.01, "bias_correction": True, "coupled": True},
    {"l2sp": 0.3, "weight_decay": 0.01, "bias_correction": False, "coupled": True},
    {"l2sp": 0.0, "weight_decay": 0.1, "bias_correction": False, "coupled": False},
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("setting", SETTINGS)
def test_update_matches_reference_math(setting, kernel, device):
    params = _params(device=device)
    anchors = [p.detach().clone() for p in params]
    # the weights have moved away from their anchors before fine-tuning steps start: shift them
    with torch.no_grad():
        for p in params:
            p.add_(0.5)
    optimizer = AdamWL2SP(
        params,
        lr=0.05,
        betas=(0.8, 0.95),
        eps=1e-6,
        anchors=dict(zip(params, anchors, strict=True)),
        **KERNELS[kernel],
        **setting,
    )
    lrs = [0.05, 0.04, 0.03, 0.02, 0.01]  # a schedule: the pull scales with the scheduled lr
    anchors = [anchor.cpu() for anchor in anchors]  # the reference computes on the CPU
    state = [(p.detach().cpu().clone(), torch.zeros_like(p.cpu()), torch.zeros_like(p.cpu())) for p in params]
    for step in range(5):
        grads = [grad.cpu() for grad in _grads(params, step)]
        state = [
            reference_step(
                theta,
                anchor,
                grad,
                m,
                v,
                step + 1,
                lr=lrs[step],
                beta1=0.8,
                beta2=0.95,
                eps=1e-6,
                wd=setting["weight_decay"],
                l2sp=setting["l2sp"],
                bias_correction=setting["bias_correction"],
                coupled=setting["coupled"],
            )
            for (theta, m, v), anchor, grad in zip(state, anchors, grads, strict=True)
        ]
    _run(optimizer, params, 5, lrs)
    for param, (theta, m, v) in zip(params, state, strict=True):
        torch.testing.assert_close(param.detach().cpu(), theta, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(optimizer.state[param]["exp_avg"].cpu(), m, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(optimizer.state[param]["exp_avg_sq"].cpu(), v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("maximize", [False, True])
def test_kernels_agree(setting, maximize, device):
    results = {}
    for kernel in KERNELS:
        params = _params(dtype=torch.float32, device=device)
        optimizer = AdamWL2SP(params, lr=1e-2, maximize=maximize, **KERNELS[kernel], **setting)
        assert optimizer.param_groups[0]["fused"] is (kernel == "fused")
        with torch.no_grad():
            for p in params:
                p.mul_(1.5)
        _run(optimizer, params, 6)
        results[kernel] = [p.detach().clone() for p in params]
    for kernel, values in results.items():
        for got, expected in zip(values, results["single"], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7, msg=kernel)


@pytest.mark.parametrize("setting", SETTINGS)
def test_default_kernel_is_fused_wherever_the_device_has_one(setting):
    assert AdamWL2SP(_params(), **setting).param_groups[0]["fused"] is True  # CPU has a fused AdamW kernel
    if torch.cuda.is_available():
        assert AdamWL2SP(_params(device="cuda"), **setting).param_groups[0]["fused"] is True
    assert AdamWL2SP(_params(), foreach=True, **setting).param_groups[0]["fused"] is False
    assert AdamWL2SP(_params(), foreach=False, **setting).param_groups[0]["fused"] is False
    meta = [nn.Parameter(torch.empty(3, device="meta"))]  # a device without a fused AdamW kernel
    assert AdamWL2SP(meta, **setting).param_groups[0]["fused"] is False
    with pytest.raises(ValueError, match="fused=True needs floating-point parameters on a device"):
        AdamWL2SP(meta, fused=True, **setting)
    with pytest.raises(ValueError, match="exclusive"):
        AdamWL2SP(_params(), fused=True, foreach=True, **setting)


def _record_fused_calls(monkeypatch):
    """Spy on ``torch._fused_adamw_``: the keyword arguments and tensor count of every call, in order."""
    calls = []
    fused_adamw = torch._fused_adamw_

    def spy(params, *args, **kwargs):
        calls.append({"tensors": len(params), **kwargs})
        return fused_adamw(params, *args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adamw_", spy)
    return calls


def test_bertadam_runs_the_fused_kernel_with_per_step_rescaled_lr_eps_and_weight_decay(monkeypatch):
    calls = _record_fused_calls(monkeypatch)
    params = _params()
    lr, (beta1, beta2), eps, weight_decay = 0.05, (0.8, 0.95), 1e-6, 0.01
    optimizer = AdamWL2SP(
        params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, bias_correction=False
    )
    _run(optimizer, params, 3)
    assert [call["tensors"] for call in calls] == [len(params)] * 3  # one call per step, every tensor
    for t, call in enumerate(calls, start=1):
        c1, c2 = 1 - beta1**t, math.sqrt(1 - beta2**t)
        assert call["lr"] == pytest.approx(lr * c1 / c2, rel=1e-15)
        assert call["eps"] == pytest.approx(eps / c2, rel=1e-15)
        assert call["weight_decay"] == pytest.approx(weight_decay * c2 / c1, rel=1e-15)
        assert call["lr"] * call["weight_decay"] == pytest.approx(lr * weight_decay, rel=1e-15)  # same decay
        # the kernel's bias-corrected step with these values is the uncorrected one, for any m and v
        m, v = torch.randn(100, dtype=torch.float64), torch.rand(100, dtype=torch.float64)
        corrected = call["lr"] / c1 * m / (v.sqrt() / c2 + call["eps"])
        torch.testing.assert_close(corrected, lr * m / (v.sqrt() + eps), rtol=1e-14, atol=0)


def test_bias_corrected_fused_kernel_gets_the_groups_own_values(monkeypatch):
    calls = _record_fused_calls(monkeypatch)
    params = _params()
    _run(AdamWL2SP(params, lr=0.05, eps=1e-6, weight_decay=0.01, l2sp=0.1), params, 2)
    assert [(c["lr"], c["eps"], c["weight_decay"]) for c in calls] == [(0.05, 1e-6, 0.01)] * 2


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("kernel", ["fused", "foreach"])
def test_bertadam_groups_of_different_lr_match_single_tensor_reference(kernel, maximize, dtype, device):
    """BERTAdam, each group its own lr, weight decay and L2-SP (decoupled and coupled), over a schedule."""

    def groups(params):
        return [
            {"params": params[:1], "lr": 0.05, "weight_decay": 0.0, "l2sp": 0.3},
            {"params": params[1:2], "lr": 0.02, "weight_decay": 0.01, "l2sp": 0.0},
            {"params": params[2:3], "lr": 0.01, "weight_decay": 0.1, "l2sp": 0.5, "coupled": True},
            {"params": params[3:], "lr": 0.003, "weight_decay": 0.0, "l2sp": 0.0, "eps": 1e-3},
        ]

    results = {}
    for name in (kernel, "single"):
        params = _params(dtype=dtype, device=device)
        optimizer = AdamWL2SP(
            groups(params), betas=(0.8, 0.95), bias_correction=False, maximize=maximize, **KERNELS[name]
        )
        assert all(group["fused"] is (name == "fused") for group in optimizer.param_groups)
        with torch.no_grad():
            for p in params:
                p.add_(0.5)  # away from the anchors
        for step in range(8):
            for param, grad in zip(params, _grads(params, step), strict=True):
                param.grad = grad
            for group in optimizer.param_groups:
                group["lr"] *= 0.9  # a schedule, scaling each group's lr
            optimizer.step()
        results[name] = [p.detach().clone() for p in params]
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-6, "atol": 1e-7}
    for got, expected in zip(results[kernel], results["single"], strict=True):
        torch.testing.assert_close(got, expected, **tolerance)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("coupled", [False, True])
def test_bertadam_fused_with_parameters_at_different_steps(coupled, device):
    """A parameter without a gradient skips steps: its rescaled lr, ε and weight decay differ from the others'."""
    results = {}
    for kernel in ("fused", "single"):
        params = _params(device=device)
        optimizer = AdamWL2SP(
            params,
            lr=0.05,
            l2sp=0.3,
            weight_decay=0.01,
            bias_correction=False,
            coupled=coupled,
            **KERNELS[kernel],
        )
        for step in range(5):
            for i, (param, grad) in enumerate(zip(params, _grads(params, step), strict=True)):
                param.grad = None if (i == 1 and step in (1, 2)) else grad
            optimizer.step()
        results[kernel] = [p.detach().clone() for p in params]
        assert [optimizer.state[p]["step"].item() for p in params] == [5, 3, 5, 5]
    for got, expected in zip(results["fused"], results["single"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_bertadam_fused_kernel_calls_per_distinct_step(monkeypatch):
    calls = _record_fused_calls(monkeypatch)
    params = _params()
    optimizer = AdamWL2SP(params, lr=0.05, bias_correction=False)
    _run(optimizer, params, 1)
    params[0].grad = None  # params[0] stays at step 1, the others go to step 2
    for param in params[1:]:
        param.grad = torch.ones_like(param)
    optimizer.step()
    _run(optimizer, params, 1)  # steps 2 and 3: two calls
    assert [c["tensors"] for c in calls] == [4, 3, 1, 3]


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("bias_correction", [True, False])
def test_no_kernel_writes_to_the_gradients(kernel, maximize, bias_correction):
    params = _params(dtype=torch.float32)
    optimizer = AdamWL2SP(
        [{"params": params[:2], "coupled": True}, {"params": params[2:]}],
        lr=1e-2,
        l2sp=0.5,
        weight_decay=0.01,
        maximize=maximize,
        bias_correction=bias_correction,
        **KERNELS[kernel],
    )
    for step in range(3):
        grads = _grads(params, step)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad.clone()
        optimizer.step()
        for param, grad in zip(params, grads, strict=True):
            assert torch.equal(param.grad, grad)


@pytest.mark.parametrize("bias_correction", [True, False])
@pytest.mark.parametrize("maximize", [False, True])
def test_coupled_fused_in_slices_matches_reference(bias_correction, maximize, monkeypatch):
    """With a tiny slice size the coupled path batches small tensors, cuts large contiguous ones into flat
    views, and keeps a large non-contiguous one whole — every element updated once, as the reference does."""
    monkeypatch.setattr(adamwl2sp, "_COUPLED_SLICE_NUMEL", 4)

    def make():
        generator = torch.Generator().manual_seed(3)
        return [
            nn.Parameter(torch.randn(5, 3, generator=generator, dtype=torch.float64)),  # cut into 4 slices
            nn.Parameter(torch.randn(2, generator=generator, dtype=torch.float64)),  # batched with the next
            nn.Parameter(torch.randn(1, generator=generator, dtype=torch.float64)),
            nn.Parameter(torch.randn(3, 4, generator=generator, dtype=torch.float64).t()),  # non-contiguous
            nn.Parameter(torch.randn(0, generator=generator, dtype=torch.float64)),  # empty
        ]

    tensors = make()
    batches = list(adamwl2sp._coupled_slices(*[tensors] * 6, max_numel=4))
    assert [[t.numel() for t in batch[0]] for batch in batches] == [[4], [4], [4], [3], [2, 1], [12], [0]]
    assert batches[0][0][0].data_ptr() == tensors[0].data_ptr()  # slices are views

    results = {}
    for kernel in ("fused", "single"):
        params = make()
        optimizer = AdamWL2SP(
            params,
            lr=0.05,
            l2sp=0.3,
            weight_decay=0.01,
            coupled=True,
            bias_correction=bias_correction,
            maximize=maximize,
            **KERNELS[kernel],
        )
        with torch.no_grad():
            for p in params:
                p.add_(0.5)
        for step in range(4):
            generator = torch.Generator().manual_seed(step)
            for p in params:  # gradients laid out like their parameters, as backward makes them
                p.grad = torch.empty_like(p).copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
            optimizer.step()
        results[kernel] = [p.detach().clone() for p in params]
    for got, expected in zip(results["fused"], results["single"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_bertadam_fused_with_zero_lr_moves_nothing():
    params = _params()
    before = [p.detach().clone() for p in params]
    optimizer = AdamWL2SP(params, lr=0.0, weight_decay=0.1, bias_correction=False, fused=True)
    _run(optimizer, params, 2)
    for p, b in zip(params, before, strict=True):
        assert torch.equal(p.detach(), b)


def test_mixed_devices_and_dtypes_group_in_foreach_kernel():
    params = [
        nn.Parameter(torch.randn(4, dtype=torch.float32)),
        nn.Parameter(torch.randn(4, dtype=torch.float64)),
    ]
    twins = [nn.Parameter(p.detach().clone()) for p in params]
    multi = AdamWL2SP(params, lr=0.1, l2sp=0.5, foreach=True)
    single = AdamWL2SP(twins, lr=0.1, l2sp=0.5, foreach=False)
    _run(multi, params, 3)
    _run(single, twins, 3)
    for a, b in zip(params, twins, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_without_l2sp_equals_torch_adamw(kernel, maximize, weight_decay):
    ours = _params(dtype=torch.float32)
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    kwargs = {
        "lr": 3e-3,
        "betas": (0.9, 0.98),
        "eps": 1e-6,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    _run(AdamWL2SP(ours, **KERNELS[kernel], **kwargs), ours, 10)
    _run(torch.optim.AdamW(theirs, **KERNELS[kernel], **kwargs), theirs, 10)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_default_anchors_snapshot_groups_with_l2sp_only():
    pretrained, novel = _params(seed=1), _params(seed=2)
    optimizer = AdamWL2SP(
        [{"params": pretrained, "l2sp": 0.1}, {"params": novel, "weight_decay": 0.01}], lr=1e-3
    )
    for p in pretrained:
        anchor = optimizer.state[p]["anchor"]
        assert torch.equal(anchor, p.detach()) and anchor.data_ptr() != p.data_ptr()
    assert all("anchor" not in optimizer.state[p] for p in novel)
    # anchors live in the per-parameter state, never in param_groups
    for group in optimizer.state_dict()["param_groups"]:
        assert set(group) >= {"l2sp", "weight_decay"} and all(not torch.is_tensor(v) for v in group.values())


def test_pretrained_groups_pulled_to_anchor_novel_groups_decayed_to_zero():
    pretrained, novel = [nn.Parameter(torch.full((3,), 2.0))], [nn.Parameter(torch.full((3,), 2.0))]
    anchors = {pretrained[0]: torch.full((3,), 1.0)}
    optimizer = AdamWL2SP(
        [{"params": pretrained, "l2sp": 1.0}, {"params": novel, "weight_decay": 1.0}], lr=0.5, anchors=anchors
    )
    for p in pretrained + novel:
        p.grad = torch.zeros(3)  # no data signal: only the regularisers act
    optimizer.step()
    torch.testing.assert_close(pretrained[0].detach(), torch.full((3,), 1.5))  # 2 − 0.5·1·(2 − 1)
    torch.testing.assert_close(novel[0].detach(), torch.full((3,), 1.0))  # 2 − 0.5·1·2


def test_explicit_anchors_by_name():
    model = nn.Linear(3, 2)
    anchors = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    optimizer = AdamWL2SP(model.named_parameters(), lr=1.0, l2sp=0.5, anchors=anchors)
    assert all(torch.equal(optimizer.state[p]["anchor"], torch.zeros_like(p)) for p in model.parameters())
    assert optimizer.param_groups[0]["param_names"] == ["weight", "bias"]


def test_explicit_anchors_errors():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="No anchor given"):
        AdamWL2SP(model.parameters(), l2sp=0.5, anchors={model.weight: torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="match no parameter"):
        AdamWL2SP(model.named_parameters(), l2sp=0.5, anchors={"weight": torch.zeros(2, 3), "bias": torch.zeros(2),
                                                                 "typo": torch.zeros(1)})  # fmt: skip
    with pytest.raises(ValueError, match="has shape"):
        AdamWL2SP(
            model.parameters(),
            l2sp=0.5,
            anchors={model.weight: torch.zeros(3, 2), model.bias: torch.zeros(2)},
        )


@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"eps": -1.0}, {"betas": (1.0, 0.9)}, {"weight_decay": -0.1},
                                 {"l2sp": -0.1}, {"lr": 0.1, "l2sp": 20.0}])  # fmt: skip
def test_invalid_hyperparameters(bad):
    with pytest.raises(ValueError, match=r"Invalid|overshoot"):
        AdamWL2SP(_params(), **bad)


def test_group_that_gains_l2sp_later_without_anchor_errors():
    params = _params()
    optimizer = AdamWL2SP(params, lr=0.1)
    optimizer.param_groups[0]["l2sp"] = 0.1
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="has no anchor"):
        optimizer.step()


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize(
    "setting",
    [{}, {"bias_correction": False}, {"coupled": True}, {"bias_correction": False, "coupled": True}],
    ids=["bias-corrected", "bertadam", "coupled", "bertadam-coupled"],
)
def test_save_resume_continues_bit_for_bit_with_original_anchors(kernel, setting, tmp_path):
    hyper = {"lr": 1e-2, "l2sp": 0.2, "weight_decay": 0.01, **setting, **KERNELS[kernel]}
    params = _params(dtype=torch.float32)
    original = [p.detach().clone() for p in params]
    optimizer = AdamWL2SP(params, **hyper)
    _run(optimizer, params, 4)
    torch.save(
        {"params": [p.detach() for p in params], "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.pt"
    )
    uninterrupted = copy.deepcopy(params)
    uninterrupted_optimizer = AdamWL2SP(uninterrupted, **hyper)
    uninterrupted_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    _run(optimizer, params, 3)

    checkpoint = torch.load(tmp_path / "ckpt.pt")
    resumed = [nn.Parameter(p.clone()) for p in checkpoint["params"]]
    # a fresh optimizer snapshots the *current* (fine-tuned) weights; the checkpoint restores the pretrained ones
    resumed_optimizer = AdamWL2SP(resumed, **hyper)
    assert not torch.equal(resumed_optimizer.state[resumed[0]]["anchor"], original[0])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    for p, anchor in zip(resumed, original, strict=True):
        assert torch.equal(resumed_optimizer.state[p]["anchor"], anchor)
    _run(resumed_optimizer, resumed, 3)
    for a, b in zip(params, resumed, strict=True):
        assert torch.equal(a, b)
    del uninterrupted_optimizer


def test_loading_plain_adamw_state_keeps_own_anchors():
    params = _params(dtype=torch.float32)
    adamw = torch.optim.AdamW(params, lr=1e-2)
    _run(adamw, params, 2)
    optimizer = AdamWL2SP(params, lr=1e-2, l2sp=0.1)
    anchors = [optimizer.state[p]["anchor"].clone() for p in params]
    optimizer.load_state_dict(adamw.state_dict())
    for p, anchor in zip(params, anchors, strict=True):
        assert torch.equal(optimizer.state[p]["anchor"], anchor)
        assert optimizer.state[p]["step"].item() == 2
    _run(optimizer, params, 1)


def test_extra_memory_is_one_copy_of_the_anchored_parameters():
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))
    pretrained, head = list(model[0].parameters()), list(model[1].parameters())

    def state_bytes(optimizer):
        return sum(
            t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if t.dim()
        )

    for p in model.parameters():
        p.grad = torch.ones_like(p)
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3)
    adamw.step()
    ours = AdamWL2SP([{"params": pretrained, "l2sp": 0.1}, {"params": head}], lr=1e-3)
    ours.step()
    anchored_bytes = sum(p.numel() * p.element_size() for p in pretrained)
    assert state_bytes(ours) - state_bytes(adamw) == anchored_bytes


def test_trains_a_model_and_stays_near_anchor_with_strong_l2sp():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    distances = {}
    for l2sp in (0.0, 10.0):
        torch.manual_seed(1)
        model = nn.Linear(4, 1)
        start = model.weight.detach().clone()
        optimizer = AdamWL2SP(model.parameters(), lr=0.05, l2sp=l2sp)
        for _ in range(50):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        distances[l2sp] = (model.weight.detach() - start).norm().item()
    assert distances[10.0] < 0.5 * distances[0.0]
