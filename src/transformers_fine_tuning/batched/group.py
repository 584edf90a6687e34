"""N seeds of one recipe, their training forward and backward computed as one batched computation.

Each seed keeps its own model object, Trainer, optimizer, callbacks and ``results.json``: only the training
step's forward and backward are shared. :class:`SeedGroup` stacks the seeds' parameters into one tensor per
parameter (``torch.func.stack_module_state``: shape ``[N, *shape]``) and points each model's parameters at its
slice (``param.data = stacked[i]``), so a seed's optimizer, its evaluation and its checkpoints read and write
the shared storage in place. In training, a seed's forward waits until every seed of the group has given its
batch; one ``vmap(functional_call(...))`` then computes all N losses and logits, and each seed receives its
own, joined to the batched graph by :class:`_SeedOutputs`. Its backward hands the seed's output gradients to the
group without waiting (on a GPU it runs in autograd's one thread for the device, shared by all seeds); the seed's
thread then waits in :meth:`SeedGroup.backward` (called after the Trainer's backward) for the others, and one
backward through the batched graph gives every seed the gradient its solo run would have (the seeds are
independent, so the gradient of the sum is each seed's own), added to its parameters' ``.grad``. Clipping,
the optimizer step and the schedule then run per seed, in the seed's own Trainer.

The batched forward and backward always run in the group's own thread (with the autocast and grad mode of the
seed that completed the round), never in the seeds' threads: glibc gives each thread its own heap (arena) and, with
the study's fixed malloc thresholds (:data:`~transformers_fine_tuning.study.run.environment.MALLOC_THRESHOLDS`),
keeps each arena at its peak, so a group whose batched step ran in whichever seed's thread arrived last held N
copies of the N seeds' activations (eight MiniLM seeds on RTE grew past 24 GiB and were killed; BENCHMARKS.md
section 8).

Dropout draws ``randomness="different"`` masks (a different stream per seed) from the generator the group
seeds at every step from the group's seeds and the step, so the same group reruns identically; a seed's masks
are not those of its solo run (which draws them one seed at a time). The copy the batched forward runs takes each
module's training or evaluation mode from the seed's model at every step (:meth:`SeedGroup._follow_modes`).

The approach follows ``torch.func``'s model ensembling (``stack_module_state`` + ``vmap`` +
``functional_call``); see the PyTorch tutorial "Model ensembling".
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MethodType
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = ["GroupAborted", "SeedGroup"]

_PAD = {"input_ids": "pad_token_id", "attention_mask": 0, "token_type_ids": 0, "special_tokens_mask": 1}


class GroupAborted(RuntimeError):
    """Another seed of the group failed, so the batched step cannot go on."""


class _SeedOutputs(torch.autograd.Function):
    """Seed ``index``'s loss and logits, copied out of the batched computation; their backward hands the
    seed's output gradients to the group, which runs one backward for all seeds once each seed's thread has asked
    for it (:meth:`SeedGroup.backward`)."""

    @staticmethod
    def forward(ctx, group: SeedGroup, index: int, anchor: Tensor, loss: Tensor, logits: Tensor):
        ctx.group, ctx.index = group, index
        return loss.clone(), logits.clone()

    @staticmethod
    def backward(ctx, grad_loss: Tensor, grad_logits: Tensor):
        ctx.group.receive_gradients(ctx.index, grad_loss, grad_logits)
        return None, None, None, None, None


class SeedGroup:
    """The seeds' models trained as one batched computation; see the module docstring.

    Args:
        models: one model per seed, all of one architecture (same parameter names and shapes, no tied weights).
        seeds: each model's seed, which with the step seeds the dropout of the batched forward.
        pad_token_id: what pads ``input_ids`` when the seeds' batches differ in length.

    Raises:
        ValueError: models that differ in their parameters, or share weights between modules.
    """

    def __init__(self, models: Sequence[nn.Module], seeds: Sequence[int], *, pad_token_id: int = 0) -> None:
        _check_same_structure(models)
        self.models, self.seeds, self.pad_token_id = list(models), list(seeds), pad_token_id
        self._base = copy.deepcopy(self.models[0]).to("meta")  # the structure functional_call runs
        self._base_modules = list(self._base.modules())
        params, buffers = stack_module_state(self.models)
        self.params: dict[str, Tensor] = params  # leaves, [N, *shape], the seeds' shared storage
        self.buffers: dict[str, Tensor] = buffers
        for index, model in enumerate(self.models):
            for name, param in model.named_parameters():
                param.data = self.params[name].detach()[index]
            model.forward = MethodType(_routed_forward(self, index, model.forward), model)
        self._active = set(range(len(self.models)))
        self._condition = threading.Condition()
        self._inputs: dict[int, dict[str, Any]] = {}
        self._grads: dict[int, tuple[Tensor, Tensor]] = {}
        self._backward_called: dict[int, bool] = {}
        self._outputs: tuple[Tensor, Tensor] | None = None
        self._round = 0
        self._steps = 0
        self._error: BaseException | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-group")
        self._device_type = next(iter(self.params.values())).device.type

    # ---- membership -------------------------------------------------------------------------------------

    def leave(self, index: int) -> None:
        """Seed ``index`` trains no more (its run ended or stopped early): the others stop waiting for it. The
        group's thread ends with the last seed."""
        with self._condition:
            self._active.discard(index)
            self._condition.notify_all()
            if not self._active:
                self._thread.shutdown(wait=False)

    def abort(self, error: BaseException) -> None:
        """A seed failed: every seed waiting on the group raises :class:`GroupAborted`."""
        with self._condition:
            self._error = self._error or error
            self._condition.notify_all()

    def _wait_for(self, arrived: dict[int, Any], action: Callable[[], None]) -> None:
        """Wait until every active seed has arrived in ``arrived``; the last to arrive runs ``action``."""
        with self._condition:
            round_ = self._round
            while True:
                if self._error is not None:
                    raise GroupAborted(f"another seed of the batched group failed: {self._error!r}")
                if self._round != round_:
                    return
                if self._active <= set(arrived):
                    try:
                        self._in_group_thread(action)
                    except BaseException as error:
                        self._error = error
                        self._condition.notify_all()
                        raise
                    self._round += 1
                    self._condition.notify_all()
                    return
                self._condition.wait()

    def _in_group_thread(self, action: Callable[[], None]) -> None:
        """Run ``action`` in the group's thread under this thread's grad mode and autocast (both thread-local: a
        seed's Trainer enters ``--bf16``'s autocast in its own thread), and wait for it."""
        device = self._device_type
        grad, autocast = torch.is_grad_enabled(), torch.is_autocast_enabled(device)
        dtype = torch.get_autocast_dtype(device)

        def call() -> None:
            with torch.set_grad_enabled(grad), torch.autocast(device, dtype=dtype, enabled=autocast):
                action()

        self._thread.submit(call).result()

    # ---- the batched step -------------------------------------------------------------------------------

    def forward(self, index: int, inputs: dict[str, Any]) -> SequenceClassifierOutput:
        """Seed ``index``'s training forward: its loss and logits out of the batched forward of all seeds."""
        with self._condition:
            self._inputs[index] = inputs
        self._wait_for(self._inputs, self._batched_forward)
        losses, logits = self._outputs
        anchor = self._anchor
        loss_i, logits_i = _SeedOutputs.apply(
            self, index, anchor, losses[index].detach(), logits[index].detach()
        )
        return SequenceClassifierOutput(loss=loss_i, logits=logits_i)

    def receive_gradients(self, index: int, grad_loss: Tensor | None, grad_logits: Tensor | None) -> None:
        """Seed ``index``'s output gradients, from its ``loss.backward()``; kept until :meth:`backward`. It does not
        wait: on a GPU it runs in autograd's one thread for the device, which every seed's backward shares."""
        losses, logits = self._outputs
        with self._condition:
            self._grads[index] = (
                torch.zeros_like(losses[index]) if grad_loss is None else grad_loss,
                torch.zeros_like(logits[index]) if grad_logits is None else grad_logits,
            )

    def backward(self, index: int) -> None:
        """Called in seed ``index``'s thread after its ``loss.backward()``: returns once the batched backward of all
        seeds has filled its ``.grad``. The round waits for these calls, not for the gradients, which each seed
        has handed over before it calls."""
        with self._condition:
            self._backward_called[index] = True
        self._wait_for(self._backward_called, self._batched_backward)

    def _batched_forward(self) -> None:
        count = len(self.models)
        batches = [self._inputs.get(i) or next(iter(self._inputs.values())) for i in range(count)]
        stacked = self._stack_inputs(batches)
        self._follow_modes(self.models[min(self._inputs)])
        torch.manual_seed(_step_seed(self.seeds, self._steps))  # the dropout masks of this step
        self._steps += 1
        losses, logits = vmap(self._seed_forward, randomness="different")(self.params, self.buffers, stacked)
        self._outputs = (losses, logits)
        self._anchor = torch.zeros((), requires_grad=True)
        self._inputs, self._grads = {}, {}

    def _follow_modes(self, model: nn.Module) -> None:
        """Put each module of the batched structure in the training or evaluation mode of the seed's module:
        the copy was made when the group formed, when a ``from_pretrained`` model is still in evaluation mode,
        and the Trainer switches the seeds' models to training later (once, the batched forward ran without
        dropout). The flag is set directly: ``PreTrainedModel.train`` would also re-kernelize the copy."""
        for base, own in zip(self._base_modules, model.modules(), strict=True):
            base.training = own.training

    def _seed_forward(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: dict[str, Tensor]):
        outputs = functional_call(self._base, (params, buffers), (), inputs)
        return outputs.loss, outputs.logits

    def _batched_backward(self) -> None:
        losses, logits = self._outputs
        count = len(self.models)
        grad_losses = torch.stack(
            [self._grads.get(i, (torch.zeros_like(losses[i]),))[0] for i in range(count)]
        )
        grad_logits = torch.stack(
            [self._grads[i][1] if i in self._grads else torch.zeros_like(logits[i]) for i in range(count)]
        )
        for param in self.params.values():
            param.grad = None
        torch.autograd.backward((losses, logits), (grad_losses, grad_logits))
        for index in self._grads:
            _add_grads(self.models[index], self.params, index)
        self._outputs, self._grads, self._backward_called = None, {}, {}

    def _stack_inputs(self, batches: list[dict[str, Any]]) -> dict[str, Tensor]:
        """The seeds' batches as ``[N, batch, ...]`` tensors, padded to the longest sequence; the attention mask
        made the model's way (``create_bidirectional_mask``) outside ``vmap``, whose batched tensors cannot take
        the mask code's checks on the data."""
        keys = [key for key, value in batches[0].items() if isinstance(value, Tensor)]
        length = max(batch["input_ids"].shape[-1] for batch in batches)
        stacked = {
            key: torch.stack([_pad(batch[key], key, length, self.pad_token_id) for batch in batches])
            for key in keys
        }
        if "attention_mask" in stacked:
            stacked["attention_mask"] = _attention_mask(self._base.config, stacked["attention_mask"])
        return stacked


def _routed_forward(group: SeedGroup, index: int, own: Callable[..., Any]) -> Callable[..., Any]:
    """Model ``index``'s forward: in training with gradients, through the group; else (evaluation) its own. The
    group's batched forward runs a copy of the model (``_base``), whose forward is the model's own."""

    @functools.wraps(getattr(own, "__func__", own))  # the Trainer reads its signature to keep the columns
    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        if args or not (self.training and torch.is_grad_enabled()):
            return own(*args, **kwargs)
        kwargs.pop("num_items_in_batch", None)  # sequence-classification heads take their batch's mean
        return group.forward(index, kwargs)

    return forward


def _check_same_structure(models: Sequence[nn.Module]) -> None:
    shapes = [{name: tuple(p.shape) for name, p in model.named_parameters()} for model in models]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise ValueError(
            "batched seeds need models of one architecture: their parameters differ in names or shapes"
        )
    for model in models:
        if len(list(model.named_parameters(remove_duplicate=False))) != len(shapes[0]):
            raise ValueError(
                f"batched seeds cannot train {type(model).__name__}: it shares weights between modules; run the seeds "
                "singly"
            )


def _add_grads(model: nn.Module, params: dict[str, Tensor], index: int) -> None:
    """Seed ``index``'s slice of the batched gradients, added to its trainable parameters' ``.grad``."""
    for name, param in model.named_parameters():
        grad = params[name].grad
        if grad is None or not param.requires_grad:
            continue
        if param.grad is None:
            param.grad = grad[index]
        else:
            param.grad.add_(grad[index])


def _pad(tensor: Tensor, key: str, length: int, pad_token_id: int) -> Tensor:
    missing = length - tensor.shape[-1]
    if tensor.dim() < 2 or missing == 0:
        return tensor
    value = pad_token_id if _PAD.get(key) == "pad_token_id" else _PAD.get(key, 0)
    return torch.nn.functional.pad(tensor, (0, missing), value=value)


def _attention_mask(config: Any, mask: Tensor) -> Tensor:
    """The model's 4-D attention mask for ``[N, batch, length]`` padding masks, as ``[N, batch, 1, q, k]``."""
    from transformers.masking_utils import create_bidirectional_mask

    count, batch, length = mask.shape
    flat = mask.reshape(count * batch, length)
    dummy = torch.empty(count * batch, length, 1, dtype=torch.get_default_dtype(), device=mask.device)
    made = create_bidirectional_mask(config=config, inputs_embeds=dummy, attention_mask=flat)
    if made is None:  # no padding anywhere: the models' own path skips the mask too
        made = torch.ones(count * batch, 1, length, length, dtype=torch.bool, device=mask.device)
    return made.reshape(count, batch, *made.shape[1:])


def _step_seed(seeds: Sequence[int], step: int) -> int:
    """A generator seed for one step's dropout, from the group's seeds and the step (stable across runs)."""
    value = step
    for seed in seeds:
        value = (value * 1_000_003 + seed) % (2**63 - 1)
    return value
