"""The update rule of :class:`~transformers_fine_tuning.optim.adamwl2sp.AdamWL2SP`: one module-level kernel
per execution strategy, as in ``torch/optim/adam.py`` (see that module's docstring for which runs where).

Each kernel takes the tensor lists of one parameter group (parameters, gradients, both moments, steps, anchors
θ₀) and the group's hyperparameters, and updates parameters, moments and steps in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.optim import Optimizer


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
    max_numel: int,
) -> None:
    r"""The update on PyTorch's fused AdamW kernel (``torch._fused_adamw_``), for every setting.

    That kernel computes, for each tensor at its step :math:`t` (read from the tensor's step),

    .. math::
        \theta \leftarrow \theta - \eta\lambda_{wd}\,\theta, \qquad
        \theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
            \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    with the moments updated from the gradient it is given (negated if ``maximize``). Around it:

    * **decoupled L2-SP**: first the pull :math:`\operatorname{lerp}(\theta, \theta_0, \eta\lambda_{sp})`;
    * **coupled L2-SP**: :math:`g + \lambda_{sp}(\theta - \theta_0)` as its gradient (:func:`_fused_batches`);
    * **BERTAdam** (``bias_correction=False``): lr, ε, weight decay rescaled per step (:func:`_fused_calls`).
    """
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_sqs, steps, anchors]
    )
    for device_lists, _ in grouped.values():
        device_params, _, _, _, device_steps, device_anchors = device_lists
        torch._foreach_add_(device_steps, 1)
        if l2sp != 0.0 and not coupled:
            torch._foreach_lerp_(device_params, device_anchors, lr * l2sp)
        for lists, hyperparameters in _fused_calls(
            device_lists,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
        ):
            _fused_batches(
                lists,
                hyperparameters,
                beta1=beta1,
                beta2=beta2,
                l2sp=l2sp if coupled else 0.0,
                maximize=maximize,
                max_numel=max_numel,
            )


def _fused_batches(
    lists: list[list[Tensor]],
    hyperparameters: dict[str, float],
    *,
    beta1: float,
    beta2: float,
    l2sp: float,
    maximize: bool,
    max_numel: int,
) -> None:
    r"""One call of :func:`_fused_calls` on ``torch._fused_adamw_``, with the coupled L2-SP pull ``l2sp``
    (0: none).

    With the pull, the kernel is given :math:`g + \lambda_{sp}(\theta - \theta_0)` (with ``maximize``,
    :math:`g - \lambda_{sp}(\theta - \theta_0)`, which the kernel negates) — computed as ``_foreach_sub``
    then ``_foreach_add(alpha=λ_sp)``, the reference's rounding, into temporaries, never into ``.grad``.
    Adding into ``.grad`` would move the same bytes: θ − θ₀ needs a temporary either way (g + λθ − λθ₀
    without one loses a small g to cancellation), so leaving the gradients alone costs one more temporary of
    the same size, and :func:`_coupled_slices` keeps both small (batches of at most ``max_numel`` elements).
    """
    coupled_pull = l2sp != 0.0
    batches = _coupled_slices(*lists, max_numel=max_numel) if coupled_pull else [lists]
    for (
        batch_params,
        batch_grads,
        batch_exp_avgs,
        batch_exp_avg_sqs,
        batch_steps,
        batch_anchors,
    ) in batches:
        if coupled_pull:
            difference = torch._foreach_sub(batch_params, batch_anchors)
            batch_grads = torch._foreach_add(batch_grads, difference, alpha=-l2sp if maximize else l2sp)
            del difference
        torch._fused_adamw_(
            batch_params,
            batch_grads,
            batch_exp_avgs,
            batch_exp_avg_sqs,
            [],
            batch_steps,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            maximize=maximize,
            grad_scale=None,
            found_inf=None,
            **hyperparameters,
        )


def _uncorrected_as_corrected(
    t: float, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float
) -> tuple[float, float, float]:
    r"""The ``(lr, eps, weight_decay)`` that make the bias-corrected fused kernel take BERTAdam's step ``t``.

    With :math:`c_1 = 1-\beta_1^t` and :math:`c_2 = \sqrt{1-\beta_2^t}`, the kernel called with
    :math:`(\eta', \epsilon', \lambda')` computes :math:`\theta \leftarrow \theta(1 - \eta'\lambda')`, then

    .. math::
        \theta \leftarrow \theta - \frac{\eta'}{c_1}\,\frac{m}{\sqrt{v}/c_2 + \epsilon'}
        = \theta - \frac{\eta' c_2}{c_1}\,\frac{m}{\sqrt{v} + c_2\,\epsilon'},

    and BERTAdam wants :math:`\theta(1 - \eta\lambda_{wd})`, then :math:`\theta - \eta\, m/(\sqrt{v} + \epsilon)`.
    Equal for every :math:`m, v` iff :math:`c_2\epsilon' = \epsilon`, :math:`\eta' c_2 / c_1 = \eta` and
    :math:`\eta'\lambda' = \eta\lambda_{wd}`:

    .. math::
        \epsilon' = \epsilon / c_2, \qquad \eta' = \eta\, c_1 / c_2, \qquad
        \lambda' = \eta\lambda_{wd} / \eta' = \lambda_{wd}\, c_2 / c_1 .

    Exact in real arithmetic; in floating point the step is BERTAdam's to a few units in the last place (on
    CPU the kernel computes :math:`c_1, c_2` in double from the same float step, as here). :math:`\lambda'` is
    written without dividing by :math:`\eta'`, so ``lr=0`` needs no special case, and stays 0 when
    :math:`\lambda_{wd}` is (the kernel then skips the decay, as for an undecayed group). :math:`c_1 > 0` for
    :math:`t \ge 1` and :math:`\beta_1 < 1`.
    """
    c1 = 1.0 - beta1**t
    c2 = math.sqrt(1.0 - beta2**t)
    return lr * c1 / c2, eps / c2, weight_decay * c2 / c1


def _fused_calls(
    device_lists: list[list[Tensor]],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
) -> list[tuple[list[list[Tensor]], dict[str, float]]]:
    r"""The fused kernel's calls for one device's tensor lists: each as (the lists, or a subset of their
    tensors; the kernel's ``lr``, ``eps`` and ``weight_decay``).

    Bias-corrected: one call with the group's own values (the kernel reads each tensor's step itself).
    BERTAdam (``bias_correction=False``): per step :math:`t`,

    .. math::
        \eta' = \eta\,\frac{1-\beta_1^t}{\sqrt{1-\beta_2^t}}, \qquad
        \epsilon' = \frac{\epsilon}{\sqrt{1-\beta_2^t}}, \qquad
        \lambda_{wd}' = \frac{\eta\lambda_{wd}}{\eta'} = \lambda_{wd}\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t},

    see :func:`_uncorrected_as_corrected`: one call per distinct step among the tensors (tensors of one group
    at different steps: one that had no gradient at some step) — one call in practice. That reads the steps
    on the host: free on CPU, one device-to-host copy per group and step on an accelerator.
    """
    if bias_correction:
        return [(device_lists, {"lr": lr, "eps": eps, "weight_decay": weight_decay})]
    by_step: dict[float, list[int]] = {}
    for index, t in enumerate(torch.stack(device_lists[4]).tolist()):
        by_step.setdefault(t, []).append(index)
    calls = []
    for t, indices in by_step.items():
        lists = (
            device_lists
            if len(by_step) == 1
            else [[x[i] for i in indices] if x else [] for x in device_lists]
        )
        step_lr, step_eps, step_weight_decay = _uncorrected_as_corrected(
            t, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay
        )
        calls.append((lists, {"lr": step_lr, "eps": step_eps, "weight_decay": step_weight_decay}))
    return calls


def _coupled_slices(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    anchors: list[Tensor],
    *,
    max_numel: int,
) -> Iterator[list[list[Tensor]]]:
    """The six lists in batches of at most ``max_numel`` elements, for the coupled path's temporaries.

    Consecutive small tensors share a batch (one foreach call per batch, not per tensor); a tensor larger than
    ``max_numel`` whose parameter, gradient, moments and anchor are all contiguous is cut into flat slices —
    views, so the kernel's updates land in the tensors themselves, every slice reading the tensor's one step.
    A non-contiguous tensor is never cut: larger than ``max_numel``, it forms a batch alone.
    """
    batch: list[list[Tensor]] = [[] for _ in range(6)]
    batch_numel = 0
    for param, grad, exp_avg, exp_avg_sq, step, anchor in zip(
        params, grads, exp_avgs, exp_avg_sqs, steps, anchors, strict=True
    ):
        tensors = [param, grad, exp_avg, exp_avg_sq, anchor]
        numel = param.numel()
        if numel > max_numel and all(t.is_contiguous() for t in tensors):
            flat = [t.view(-1) for t in tensors]
            pieces = [[t[start : start + max_numel] for t in flat] for start in range(0, numel, max_numel)]
        else:
            pieces = [tensors]
        for piece_param, piece_grad, piece_exp_avg, piece_exp_avg_sq, piece_anchor in pieces:
            if batch[0] and batch_numel + piece_param.numel() > max_numel:
                yield batch
                batch, batch_numel = [[] for _ in range(6)], 0
            for items, item in zip(
                batch,
                [piece_param, piece_grad, piece_exp_avg, piece_exp_avg_sq, step, piece_anchor],
                strict=True,
            ):
                items.append(item)
            batch_numel += piece_param.numel()
    if batch[0]:
        yield batch
