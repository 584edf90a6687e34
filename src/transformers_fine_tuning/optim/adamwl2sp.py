"""AdamW with an L2-SP pull toward the pretrained weights.

The class holds the bookkeeping (defaults, per-parameter state, anchors); the update rule lives in
module-level kernels (:mod:`~transformers_fine_tuning.optim.adamwl2sp_kernels`), one per execution strategy,
as in ``torch/optim/adam.py``:

* :func:`_fused_adamw_l2sp` — the L2-SP pull as one ``torch._foreach_lerp_`` (θ − ηλ(θ − θ₀) is
  lerp(θ, θ₀, ηλ)), then PyTorch's own fused AdamW kernel; the default, for every setting, wherever that
  kernel exists for the parameters' device (CPU, CUDA, …). BERTAdam (``bias_correction=False``) runs on it with
  a learning rate, ε and weight decay rescaled per step (:func:`_uncorrected_as_corrected`), and the coupled
  pull as the penalty's gradient added in small temporaries (:func:`_coupled_slices`);
* :func:`_multi_tensor_adamw_l2sp` — ``torch._foreach_*`` ops over all tensors of one device and dtype
  (the default where there is no fused kernel, e.g. XLA);
* :func:`_single_tensor_adamw_l2sp` — a plain loop over parameters, the readable reference.

All three are tested equal to each other, to a hand-written reference, and (with ``l2sp=0``) to
``torch.optim.AdamW``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from .adamwl2sp_kernels import (
    _coupled_slices as _coupled_slices,  # re-exported: the tests batch with it here
)
from .adamwl2sp_kernels import (
    _fused_adamw_l2sp,
    _multi_tensor_adamw_l2sp,
    _single_tensor_adamw_l2sp,
)
from .spd import spd_before_step, spd_project

__all__ = ["AdamWL2SP"]

AnchorMapping = Mapping[Tensor, Tensor] | Mapping[str, Tensor]

# The coupled path's temporaries are made for at most this many elements at a time (4 MiB each in float32),
# two per batch: small enough for glibc to reuse the same heap memory batch after batch. Temporaries the size of
# all parameters are fresh pages faulted in on every CPU step (MiniLM, glibc's default thresholds: ≈ 44,000
# minor faults per step, 16,000 in batches of 4 Mi elements, none in batches of 1 Mi — none either with the
# benchmarks' fixed thresholds). Read at each step and passed to the fused kernel (a test makes it small).
_COUPLED_SLICE_NUMEL = 1 << 20


def _anchor_key(key: Tensor | str) -> int | str:
    """Hashable identity of an ``anchors=`` key: the parameter's id, or the name itself."""
    return key if isinstance(key, str) else id(key)


class AdamWL2SP(Optimizer):
    r"""AdamW whose pretrained parameters are pulled toward their starting point (L2-SP).

    L2-SP (Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with Convolutional
    Networks", Eq. 3) regularises fine-tuning with :math:`\tfrac{\lambda_{sp}}{2}\lVert\theta-\theta_0\rVert^2`
    toward the pretrained weights :math:`\theta_0` instead of toward zero. As AdamW decouples weight decay from
    the adaptive step (Loshchilov & Hutter 2019), the pull is applied here directly to the weights, scaled by
    the scheduled learning rate; ``coupled=True`` instead adds the penalty's gradient before the moments (the
    loss form of the paper), so both can be compared.

    .. math::
        \begin{aligned}
        &\textbf{input: } \eta_t \text{ (scheduled lr)},\ \beta_1, \beta_2,\ \epsilon,\
            \lambda_{wd},\ \lambda_{sp},\ \theta_0 \text{ (anchor)} \\
        &\textbf{for } t = 1, 2, \ldots \\
        &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1}) \quad (\text{negated if maximize}) \\
        &\quad \textbf{if } \text{coupled}:\ g_t \leftarrow g_t + \lambda_{sp}(\theta_{t-1} - \theta_0) \\
        &\quad \textbf{else}:\ \theta \leftarrow \theta_{t-1} - \eta_t\lambda_{sp}(\theta_{t-1} - \theta_0)
            = \operatorname{lerp}(\theta_{t-1}, \theta_0, \eta_t\lambda_{sp}) \\
        &\quad \theta \leftarrow \theta - \eta_t\lambda_{wd}\,\theta \\
        &\quad m_t \leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t \qquad
               v_t \leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        &\quad \textbf{if } \text{bias\_correction}:\
               \theta_t \leftarrow \theta - \frac{\eta_t}{1-\beta_1^t}\,
               \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon} \\
        &\quad \textbf{else}:\ \theta_t \leftarrow \theta - \eta_t \frac{m_t}{\sqrt{v_t} + \epsilon}
        \end{aligned}

    ``bias_correction=False`` is the uncorrected "BERTAdam" of the original BERT code, whose early-training
    instability Mosbach et al. 2021 ("On the Stability of Fine-tuning BERT", Sec. 5.1) and Zhang et al. 2021
    ("Revisiting Few-sample BERT Fine-tuning", Sec. 3) analyse.

    ``lr``, ``weight_decay`` (λ_wd), ``l2sp`` (λ_sp), ``betas``, ``eps``, ``bias_correction`` and ``coupled``
    are also per-group keys, so one optimizer can pull pretrained groups toward their anchors (``l2sp > 0``,
    ``weight_decay = 0``) and decay novel groups toward zero (``l2sp = 0``, ``weight_decay > 0``) — see
    :func:`transformers_fine_tuning.param_groups`.

    Anchors (θ₀) are kept in the per-parameter optimizer state under ``"anchor"`` — never in
    ``param_groups`` — so ``state_dict()`` carries them and a resumed run keeps the *original* pretrained
    values. By default they are a snapshot, taken when the parameter is added to the optimizer, of every
    parameter whose group has ``l2sp > 0``. The only memory over AdamW is that one copy of the anchored
    parameters.

    Args:
        params: parameters or parameter groups (dicts, optionally with ``param_names``), or named parameters.
        lr: learning rate η.
        betas: (β₁, β₂) of the moment estimates.
        eps: ε added to the denominator.
        weight_decay: λ_wd, decoupled decay toward zero.
        l2sp: λ_sp, decoupled (or coupled) pull toward the anchor.
        anchors: explicit anchors instead of the snapshot: a mapping from parameter to tensor, or from
            parameter name to tensor when the groups carry ``param_names``. Needed for every parameter of a
            group with ``l2sp > 0``.
        bias_correction: Adam's bias correction of both moments; ``False`` gives BERTAdam.
        coupled: add the L2-SP gradient before the moments instead of pulling the weights directly.
        selective: Selective Projection Decay (Tian et al. 2024, :mod:`~transformers_fine_tuning.optim.spd`)
            instead of the pull at every step: after the step, a tensor whose gradient points away from its
            anchor is projected back by λ·r (the share of the step that moved it away), ``l2sp`` = λ in (0, 1].
        foreach: ``True`` for the multi-tensor kernel, ``False`` for the single-tensor loop.
        maximize: maximise the objective instead of minimising it.
        fused: ``True`` for PyTorch's fused AdamW kernel after a foreach L2-SP pull, for every setting (it needs
            floating-point parameters on a device that has the kernel). With ``foreach`` and ``fused`` both
            ``None`` (the default) the fused kernel is used where it exists for every parameter's device, else the
            multi-tensor kernel.

    No kernel writes to ``.grad``: after :meth:`step` the gradients are those of the data loss, as backward left
    them, also with ``coupled=True`` (the penalty's gradient is added in temporaries, see
    :func:`_fused_adamw_l2sp`) and ``maximize=True``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        l2sp: float = 0.0,
        anchors: AnchorMapping | None = None,
        bias_correction: bool = True,
        coupled: bool = False,
        selective: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps} (must be >= 0)")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta} (must be in [0, 1))")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be >= 0)")
        if l2sp < 0.0:
            raise ValueError(f"Invalid l2sp value: {l2sp} (must be >= 0)")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "l2sp": l2sp,
            "bias_correction": bias_correction,
            "coupled": coupled,
            "selective": selective,
            "foreach": foreach,
            "maximize": maximize,
            "fused": fused,
        }
        self._explicit_anchors = dict(anchors) if anchors is not None else None
        self._used_anchor_keys: set[int | str] = set()
        super().__init__(params, defaults)
        if self._explicit_anchors is None:
            self._refuse_new_parameters_anchored()
        if self._explicit_anchors is not None:
            unused = [key for key in self._explicit_anchors if _anchor_key(key) not in self._used_anchor_keys]
            unknown = [key for key in unused if not self._is_optimized(key)]
            if unknown:
                shown = [key if isinstance(key, str) else tuple(key.shape) for key in unknown[:5]]
                raise ValueError(
                    f"{len(unknown)} anchor(s) match no parameter of this optimizer, e.g. {shown}. Anchor keys "
                    "are the parameters themselves, or their names when the groups carry `param_names`."
                )
        del self._explicit_anchors, self._used_anchor_keys

    def _refuse_new_parameters_anchored(self) -> None:
        """Refuse to pull toward its starting point a parameter that ``from_pretrained`` initialised (not in the
        checkpoint: a new head), in groups given without names — the groups a plain ``Trainer`` builds, which do
        not tell the head from the backbone. transformers (≥ 5) marks what it loaded (``_is_hf_initialized``);
        the refusal needs some parameters marked, so a model never loaded from a checkpoint is not judged."""
        unnamed = [group for group in self.param_groups if group["l2sp"] > 0.0 and "param_names" not in group]
        every = [param for group in self.param_groups for param in group["params"]]
        if not unnamed or not any(getattr(param, "_is_hf_initialized", False) for param in every):
            return
        new = [
            tuple(param.shape)
            for group in unnamed
            for param in group["params"]
            if not getattr(param, "_is_hf_initialized", False)
        ]
        if new:
            raise ValueError(
                f"AdamWL2SP would pull {len(new)} parameters that from_pretrained newly initialised (not in the "
                f"checkpoint: the new head, shapes {new[:4]}) toward their random starting values. L2-SP anchors "
                "pretrained weights only: build the groups with transformers_fine_tuning.param_groups(model, lr=..., "
                "l2sp=...), or use TrainerOptimizerInit (or optimizers=(build_fine_tuning_optimizer(model, args, "
                "[L2SPCallback(...)]), None) with a plain Trainer), which give the head no anchor."
            )

    def _is_optimized(self, key: Tensor | str) -> bool:
        for group in self.param_groups:
            if isinstance(key, str):
                if key in group.get("param_names", ()):
                    return True
            elif any(p is key for p in group["params"]):
                return True
        return False

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("l2sp", 0.0)
            group.setdefault("bias_correction", True)
            group.setdefault("coupled", False)
            group.setdefault("selective", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("fused", False)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; if its ``l2sp`` is positive, record the anchors of its parameters now."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["fused"] = self._resolve_fused(group)
        if group["l2sp"] < 0.0:
            raise ValueError(f"Invalid l2sp value: {group['l2sp']} (must be >= 0)")
        if group["selective"] and group["coupled"]:
            raise ValueError(
                "selective=True (Selective Projection Decay) and coupled=True are two forms of the pull: pick one."
            )
        if group["selective"] and group["l2sp"] > 1.0:
            raise ValueError(
                f"l2sp = {group['l2sp']:g} > 1 with selective=True: the projection θ − λ·r·(θ − θ₀) would overshoot "
                "the anchor (r ≤ 1). Use λ in (0, 1]."
            )
        if not group["coupled"] and not group["selective"] and group["lr"] * group["l2sp"] > 1.0:
            raise ValueError(
                f"lr * l2sp = {group['lr'] * group['l2sp']:g} > 1: the decoupled pull θ ← θ − lr·l2sp·(θ − θ₀) "
                "would overshoot the anchor every step and diverge. Lower l2sp (typical values are 0.01 to 1 "
                "with lr around 2e-5), or use coupled=True (fine-tune: --l2sp_coupled)."
            )
        if group["l2sp"] > 0.0:
            self._record_anchors(group)

    @staticmethod
    def _resolve_fused(group: dict[str, Any]) -> bool:
        """Whether ``group`` runs the fused kernel: as asked, or by default where PyTorch has one."""
        devices_ok = all(
            p.device.type in _get_fused_kernels_supported_devices() and torch.is_floating_point(p)
            for p in group["params"]
        )
        if group["fused"] is None:
            return group["foreach"] is None and devices_ok
        if group["fused"] and not devices_ok:
            raise ValueError(
                "fused=True needs floating-point parameters on a device with a fused AdamW kernel "
                f"({', '.join(_get_fused_kernels_supported_devices())}); use foreach=True otherwise."
            )
        if group["fused"] and group["foreach"]:
            raise ValueError("fused=True and foreach=True are exclusive: pick one kernel.")
        return bool(group["fused"])

    @torch.no_grad()
    def _record_anchors(self, group: dict[str, Any]) -> None:
        explicit = getattr(self, "_explicit_anchors", None)
        names = group.get("param_names", [None] * len(group["params"]))
        for name, param in zip(names, group["params"], strict=True):
            if explicit is None:
                anchor = param
            else:
                anchor, key = self._lookup_anchor(explicit, param, name)
                if anchor is None:
                    raise ValueError(
                        f"No anchor given for parameter {name or tuple(param.shape)} of a group with "
                        f"l2sp={group['l2sp']}: `anchors=` must cover every parameter pulled toward its anchor."
                    )
                if anchor.shape != param.shape:
                    raise ValueError(
                        f"Anchor for {name or 'a parameter'} has shape {tuple(anchor.shape)}, "
                        f"the parameter {tuple(param.shape)}."
                    )
                self._used_anchor_keys.add(key)
            self.state[param]["anchor"] = anchor.detach().to(param.device, param.dtype, copy=True)

    @staticmethod
    def _lookup_anchor(
        explicit: dict[Any, Tensor], param: Tensor, name: str | None
    ) -> tuple[Tensor | None, Any]:
        """The explicit anchor of ``param`` (keyed by the parameter, else by its name) and its key's identity."""
        if param in explicit:
            return explicit[param], _anchor_key(param)
        if name is not None and name in explicit:
            return explicit[name], name
        return None, None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; anchors it does not carry (e.g. one saved by plain AdamW) are kept."""
        kept = {
            param: self.state[param]["anchor"]
            for group in self.param_groups
            for param in group["params"]
            if "anchor" in self.state.get(param, {})
        }
        super().load_state_dict(state_dict)
        for param, anchor in kept.items():
            self.state[param].setdefault("anchor", anchor)

    def _init_group(
        self, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        params, grads, exp_avgs, exp_avg_sqs, steps, anchors = [], [], [], [], [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse:
                raise RuntimeError("AdamWL2SP does not support sparse gradients.")
            state = self.state[param]
            if "step" not in state:
                # the fused kernel reads the step on the parameter's device; the others on the host
                state["step"] = torch.tensor(
                    0.0, dtype=torch.float32, device=param.device if group["fused"] else None
                )
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            params.append(param)
            grads.append(param.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
            if group["l2sp"] > 0.0:
                if "anchor" not in state:
                    raise RuntimeError(
                        f"A parameter of shape {tuple(param.shape)} is in a group with l2sp={group['l2sp']} but has "
                        "no anchor. Anchors are recorded when a group with l2sp > 0 is added to the optimizer; "
                        "build the optimizer with l2sp > 0 in that group, or pass `anchors=`."
                    )
                anchors.append(state["anchor"])
        return params, grads, exp_avgs, exp_avg_sqs, steps, anchors

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one optimisation step (see the class docstring for the update)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps, anchors = self._init_group(group)
            if not params:
                continue
            selective = group["selective"] and group["l2sp"] > 0.0
            if (
                selective
            ):  # Selective Projection Decay: the kernel steps without the pull, the projection follows
                before = spd_before_step(params, grads, anchors, maximize=group["maximize"])
            if group["fused"]:
                kernel = functools.partial(_fused_adamw_l2sp, max_numel=_COUPLED_SLICE_NUMEL)
            elif group["foreach"] is False:
                kernel = _single_tensor_adamw_l2sp
            else:
                kernel = _multi_tensor_adamw_l2sp
            beta1, beta2 = group["betas"]
            kernel(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                steps,
                anchors,
                lr=float(group["lr"]),
                beta1=beta1,
                beta2=beta2,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                l2sp=0.0 if selective else group["l2sp"],
                bias_correction=group["bias_correction"],
                coupled=group["coupled"],
                maximize=group["maximize"],
            )
            if selective:
                spd_project(params, anchors, before, group["l2sp"])
        return loss
