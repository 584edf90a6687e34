"""R3F: keep the predictions stable under small noise on the input embeddings (Aghajanyan et al. 2021).

"Better Fine-Tuning by Reducing Representational Collapse", Eq. 3: the fine-tuning loss gets a term that keeps
the model's prediction on the input embeddings x and on x + z close, for small noise z::

    L_R3F(θ) = L(θ) + λ · KL_S( f(x) ‖ f(x + z) ),   z ~ N(0, σ²I)  or  z ~ U(−σ, σ)

with the symmetric KL divergence KL_S(P ‖ Q) = KL(P ‖ Q) + KL(Q ‖ P) between the two predictive distributions.
As in the authors' fairseq implementation (``sentence_prediction_r3f``): x is the token (word) embedding,
before position embeddings and normalisation; the noisy pass starts from the embeddings *detached*, so the
embedding matrix learns only from the clean pass; both passes run in training mode (their own dropout masks)
and both get gradients; the divergence is computed in float32 (:func:`symmetric_kl`) and averaged over the
batch; σ = 1e-5 and λ = 1 are their defaults. The cost is a second forward pass (and its backward) per step
(BENCHMARKS.md, section 5).

Functional form, for any training loop::

    outputs = model(**batch)
    loss = outputs.loss + 1.0 * r3f_term(model, batch, outputs.logits, eps=1e-5)

:class:`R3FCallback` adds it for ``TrainerOptimizerInit`` (as a loss term).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..architectures import input_embeddings
from .base import FineTuningPlan, LossTermCallback

__all__ = [
    "NOISE_TYPES",
    "R3FCallback",
    "noisy_embedding_forward",
    "output_logits",
    "r3f_term",
    "symmetric_kl",
]

NOISE_TYPES = ("normal", "uniform")
"""R3F's noise distributions: N(0, σ²) and U(−σ, σ)."""


def symmetric_kl(
    logits: Tensor, other_logits: Tensor, *, problem_type: str | None = None, mask: Tensor | None = None
) -> Tensor:
    """KL(P ‖ Q) + KL(Q ‖ P) of the predictions two sets of logits make, averaged over the batch (dim 0).

    Logits with a position axis (token classification, masked LM: batch × tokens × classes) give one prediction
    per token: their divergences are summed over the tokens where ``mask`` (the attention mask, batch × tokens)
    is 1 — padding adds nothing — as the KL of independent per-token predictions is their sum.

    * classification (``single_label_classification``, the default): P, Q the softmax distributions,
      KL_S = Σ_c (p_c − q_c)·(log p_c − log q_c);
    * ``multi_label_classification``: a Bernoulli per label, KL_S = Σ_labels (σ(a) − σ(b))·(a − b);
    * ``regression``: the predictions as means of unit-variance Gaussians, KL_S = Σ (a − b)².

    Computed in float32 whatever the logits' dtype, in the product form above: equal to the sum of the two KLs,
    whose first-order terms cancel — summed separately in float32 (as fairseq does) the result keeps only about
    three digits when the predictions are close, as they are under R3F's small noise; the product keeps six.
    """
    first, second = logits.float(), other_logits.float()
    if first.shape != second.shape:
        raise ValueError(f"logits of shapes {tuple(first.shape)} and {tuple(second.shape)}")
    batch = first.shape[0]
    if problem_type == "regression":
        per_example = (first - second).pow(2)
    elif problem_type == "multi_label_classification":
        per_example = (torch.sigmoid(first) - torch.sigmoid(second)) * (first - second)
    else:
        log_p, log_q = F.log_softmax(first, dim=-1), F.log_softmax(second, dim=-1)
        per_example = (log_p.exp() - log_q.exp()) * (log_p - log_q)
    if mask is not None:
        if per_example.dim() != 3 or tuple(mask.shape) != tuple(per_example.shape[:2]):
            raise ValueError(
                f"a mask of shape {tuple(mask.shape)} needs batch × tokens × classes logits, got {tuple(first.shape)}"
            )
        per_example = per_example.sum(dim=-1) * mask.to(per_example.dtype)
    return per_example.reshape(batch, -1).sum(dim=1).mean()


def noisy_embedding_forward(
    model: nn.Module, inputs: Mapping[str, Any], *, eps: float = 1e-5, noise: str = "normal"
) -> Any:
    """The model's outputs on ``inputs`` with noise added to its input (token) embeddings, detached.

    The noise goes in through a forward hook on the encoder's token embeddings (``get_input_embeddings()``, also
    through a module of your own around a transformers model), so every architecture computes
    positions, token types and masks from ``input_ids`` exactly as in the clean pass. It is drawn on the
    embeddings' device from the global RNG (seeded like dropout; restored with a checkpoint's RNG state).
    The inputs go in whole, ``labels`` too: a module of your own may need them to run (its loss), and the
    loss the noisy pass computes is not used (only its logits are).
    """
    if noise not in NOISE_TYPES:
        raise ValueError(f"R3F noise must be one of {', '.join(NOISE_TYPES)}, got {noise!r}")
    if eps < 0.0:
        raise ValueError(f"R3F's noise scale σ must be >= 0, got {eps}")

    def add_noise(module: nn.Module, args: Any, output: Tensor) -> Tensor:
        if noise == "normal":
            perturbation = torch.randn_like(output) * eps
        else:
            perturbation = torch.empty_like(output).uniform_(-eps, eps)
        return output.detach() + perturbation

    handle = input_embeddings(model).register_forward_hook(add_noise)
    try:
        return model(**inputs)
    finally:
        handle.remove()


def r3f_term(
    model: nn.Module,
    inputs: Mapping[str, Any],
    logits: Tensor,
    *,
    eps: float = 1e-5,
    noise: str = "normal",
    problem_type: str | None = None,
) -> Tensor:
    """R3F's regulariser KL_S(f(x) ‖ f(x + z)) (Eq. 3, without λ) for the clean pass's ``logits`` on ``inputs``.

    ``problem_type`` defaults to the model config's (``regression`` when it has one label). Per-token logits
    (token classification, masked LM) are compared on the tokens of the attention mask (see :func:`symmetric_kl`).
    """
    noisy = noisy_embedding_forward(model, inputs, eps=eps, noise=noise)
    noisy_logits = output_logits(noisy, index=0)
    mask = inputs.get("attention_mask") if logits.dim() == 3 else None
    return symmetric_kl(logits, noisy_logits, problem_type=problem_type or _problem_type(model), mask=mask)


def output_logits(outputs: Any, *, index: int) -> Tensor:
    """The ``logits`` of a model's outputs (a ``ModelOutput``/dict, else the tuple entry at ``index``); refused,
    naming what the outputs hold, when there are none (a QA model's ``start_logits``/``end_logits``)."""
    if isinstance(outputs, Mapping):
        if "logits" not in outputs:
            raise ValueError(
                f"R3F compares the model's `logits`, but its outputs hold {sorted(outputs.keys())}: a model whose "
                "outputs have no single `logits` (question answering: start_logits, end_logits) is not supported."
            )
        return outputs["logits"]
    return outputs[index]


def _problem_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    given = getattr(config, "problem_type", None)
    if given:
        return given
    return "regression" if getattr(config, "num_labels", 2) == 1 else "single_label_classification"


class R3FCallback(LossTermCallback):
    """R3F (Aghajanyan et al. 2021, Eq. 3): λ·KL_S(f(x) ‖ f(x + z)) added to the task loss, z ~ N(0, σ²I)
    (``noise="normal"``) or U(−σ, σ) on the input embeddings. See :func:`transformers_fine_tuning.r3f_term`.

    A :class:`~transformers_fine_tuning.LossTermCallback`: logged as ``loss_term/r3f``; one more forward and
    backward pass per step.
    """

    technique = "r3f"

    term_name = "r3f"

    def __init__(self, strength: float = 1.0, *, eps: float = 1e-5, noise: str = "normal") -> None:
        if not strength > 0.0 or not eps > 0.0:
            raise ValueError(f"R3FCallback: strength λ and eps σ must be > 0, got {strength}, {eps}.")
        if noise not in NOISE_TYPES:
            raise ValueError(f"R3FCallback: noise must be one of {', '.join(NOISE_TYPES)}, got {noise!r}.")
        self.strength = strength
        self.eps = eps
        self.noise = noise

    def _arguments(self) -> str:
        return f"{self.strength}, eps={self.eps}, noise={self.noise!r}"

    def prepare_model(self, model: nn.Module, plan: FineTuningPlan) -> None:
        """Refuse, at construction, a head whose outputs have no single ``logits`` (question answering)."""
        from transformers.models.auto import modeling_auto

        inner = getattr(model, "get_base_model", lambda: model)()
        qa_classes = set(modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES.values())
        if type(inner).__name__ in qa_classes:
            raise ValueError(
                f"{self.describe()} compares the model's `logits`, but {type(inner).__name__} outputs start_logits "
                "and end_logits: R3F is supported for heads with one `logits` (sequence and token classification, "
                "multiple choice, masked LM). Drop it for question answering."
            )

    def loss_term(
        self, model: nn.Module, inputs: dict[str, Any], outputs: Any, loss: Tensor
    ) -> Tensor | None:
        logits = output_logits(outputs, index=1)
        return self.strength * r3f_term(model, inputs, logits, eps=self.eps, noise=self.noise)
