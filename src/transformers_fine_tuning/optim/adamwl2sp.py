"""AdamW with an L2-SP pull toward the pretrained weights.

The class holds the bookkeeping (defaults, per-parameter state, anchors); the update rule lives in
module-level kernels, one per execution strategy, as in ``torch/optim/adam.py``:

* :func:`_fused_adamw_l2sp` — the L2-SP pull as one ``torch._foreach_lerp_`` (θ − ηλ(θ − θ₀) is
  lerp(θ, θ₀, ηλ)), then PyTorch's own fused AdamW kernel; the default where that kernel exists (CPU, CUDA, …)
  and the settings are its (bias-corrected, decoupled L2-SP);
* :func:`_multi_tensor_adamw_l2sp` — ``torch._foreach_*`` ops over all tensors of one device and dtype
  (the default elsewhere, e.g. XLA, and for ``bias_correction=False`` or ``coupled=True``);
* :func:`_single_tensor_adamw_l2sp` — a plain loop over parameters, the readable reference.

All three are tested equal to each other, to a hand-written reference, and (with ``l2sp=0``) to
``torch.optim.AdamW``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

__all__ = ["AdamWL2SP"]

AnchorMapping = Mapping[Tensor, Tensor] | Mapping[str, Tensor]


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
        foreach: ``True`` for the multi-tensor kernel, ``False`` for the single-tensor loop.
        maximize: maximise the objective instead of minimising it.
        fused: ``True`` for PyTorch's fused AdamW kernel after a foreach L2-SP pull (bias-corrected, decoupled
            only). With ``foreach`` and ``fused`` both ``None`` (the default) the fused kernel is used where it
            exists for every parameter's device and the settings allow it, else the multi-tensor kernel.
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
            "foreach": foreach,
            "maximize": maximize,
            "fused": fused,
        }
        self._explicit_anchors = dict(anchors) if anchors is not None else None
        self._used_anchor_keys: set[int | str] = set()
        super().__init__(params, defaults)
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
        if not group["coupled"] and group["lr"] * group["l2sp"] > 1.0:
            raise ValueError(
                f"lr * l2sp = {group['lr'] * group['l2sp']:g} > 1: the decoupled pull θ ← θ − lr·l2sp·(θ − θ₀) "
                "would overshoot the anchor every step and diverge. Lower l2sp (typical values are 0.01 to 1 "
                "with lr around 2e-5), or use coupled=True."
            )
        if group["l2sp"] > 0.0:
            self._record_anchors(group)

    @staticmethod
    def _resolve_fused(group: dict[str, Any]) -> bool:
        """Whether ``group`` runs the fused kernel: as asked, or by default where it can."""
        fusable = group["bias_correction"] and not group["coupled"]
        devices_ok = all(
            p.device.type in _get_fused_kernels_supported_devices() and torch.is_floating_point(p)
            for p in group["params"]
        )
        if group["fused"] is None:
            return group["foreach"] is None and fusable and devices_ok
        if group["fused"] and not (fusable and devices_ok):
            raise ValueError(
                "fused=True needs bias_correction=True, coupled=False and floating-point parameters on a device "
                f"with a fused AdamW kernel ({', '.join(_get_fused_kernels_supported_devices())}); "
                "use foreach=True otherwise."
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
            if group["fused"]:
                kernel = _fused_adamw_l2sp
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
                l2sp=group["l2sp"],
                bias_correction=group["bias_correction"],
                coupled=group["coupled"],
                maximize=group["maximize"],
            )
        return loss


def _single_tensor_adamw_l2sp(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    anchors: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    l2sp: float,
    bias_correction: bool,
    coupled: bool,
    maximize: bool,
) -> None:
    for i, param in enumerate(params):
        grad = -grads[i] if maximize else grads[i]
        exp_avg, exp_avg_sq, step_t = exp_avgs[i], exp_avg_sqs[i], steps[i]
        step_t += 1

        if l2sp != 0.0:
            if coupled:
                grad = grad.add(param - anchors[i], alpha=l2sp)
            else:
                param.lerp_(anchors[i], lr * l2sp)
        if weight_decay != 0.0:
            param.mul_(1 - lr * weight_decay)

        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

        if bias_correction:
            step = step_t.item()
            step_size = lr / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
        else:
            step_size = lr
            denom = exp_avg_sq.sqrt().add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)


def _multi_tensor_adamw_l2sp(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    anchors: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    l2sp: float,
    bias_correction: bool,
    coupled: bool,
    maximize: bool,
) -> None:
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_sqs, steps, anchors]
    )
    for (
        device_params,
        device_grads,
        device_exp_avgs,
        device_exp_avg_sqs,
        device_steps,
        device_anchors,
    ), _ in grouped.values():
        if maximize:
            device_grads = torch._foreach_neg(device_grads)
        torch._foreach_add_(device_steps, 1)

        if l2sp != 0.0:
            if coupled:
                pull = torch._foreach_sub(device_params, device_anchors)
                device_grads = torch._foreach_add(device_grads, pull, alpha=l2sp)
                del pull
            else:
                torch._foreach_lerp_(device_params, device_anchors, lr * l2sp)
        if weight_decay != 0.0:
            torch._foreach_mul_(device_params, 1 - lr * weight_decay)

        torch._foreach_lerp_(device_exp_avgs, device_grads, 1 - beta1)
        torch._foreach_mul_(device_exp_avg_sqs, beta2)
        torch._foreach_addcmul_(device_exp_avg_sqs, device_grads, device_grads, 1 - beta2)
        del device_grads

        denom = torch._foreach_sqrt(device_exp_avg_sqs)
        if bias_correction:
            step_values = [step.item() for step in device_steps]
            torch._foreach_div_(denom, [(1 - beta2**step) ** 0.5 for step in step_values])
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(
                device_params, device_exp_avgs, denom, [-(lr / (1 - beta1**step)) for step in step_values]
            )
        else:
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(device_params, device_exp_avgs, denom, -lr)


def _fused_adamw_l2sp(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    anchors: list[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    l2sp: float,
    bias_correction: bool,
    coupled: bool,
    maximize: bool,
) -> None:
    if not bias_correction or coupled:
        raise ValueError("The fused kernel implements bias-corrected AdamW with a decoupled L2-SP pull only.")
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_sqs, steps, anchors]
    )
    for (
        device_params,
        device_grads,
        device_exp_avgs,
        device_exp_avg_sqs,
        device_steps,
        device_anchors,
    ), _ in grouped.values():
        if l2sp != 0.0:
            torch._foreach_lerp_(device_params, device_anchors, lr * l2sp)
        torch._foreach_add_(device_steps, 1)
        torch._fused_adamw_(
            device_params,
            device_grads,
            device_exp_avgs,
            device_exp_avg_sqs,
            [],
            device_steps,
            amsgrad=False,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=weight_decay,
            eps=eps,
            maximize=maximize,
            grad_scale=None,
            found_inf=None,
        )
