"""Model surgery for stable fine-tuning: pure functions on an ``nn.Module``, usable in any training loop.

Each function changes the model in place *before* the optimizer is built (so the optimizer, its groups and
its L2-SP anchors see the final model) and returns the names of the parameters it touched. The
:mod:`transformers_fine_tuning.callbacks` wrap them for the Trainer.

* :func:`reinit_top_layers` — Zhang et al. 2021, "Revisiting Few-sample BERT Fine-tuning", Sec. 5.2.
* :func:`freeze_bottom_layers` — freeze the embeddings and the bottom layers.
* :func:`apply_mixout` — Lee et al. 2020, "Mixout: Effective Regularization to Finetune Large-scale
  Pretrained Language Models", Eq. 2.
* :func:`apply_noisytune` — Wu et al. 2022, "NoisyTune: A Little Noise Can Help You Finetune Pretrained
  Language Models Better", Eq. 1.

Under adapters (a PEFT model: the pretrained weights frozen, only the adapters trained) re-initialisation,
Mixout and NoisyTune are refused — they act on pretrained weights that the adapters leave frozen — and freezing freezes
the adapters of the bottom layers (see each function).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architectures import LayerMap, ModelLayout, model_layout
from .techniques.registry import technique

__all__ = [
    "MixoutLinear",
    "apply_mixout",
    "apply_noisytune",
    "freeze_bottom_layers",
    "reinit_top_layers",
    "strip_mixout",
]

logger = logging.getLogger(__name__)


def _check_num_layers(num_layers: int, layout: ModelLayout, what: str) -> None:
    if not 0 <= num_layers <= layout.num_layers:
        raise ValueError(
            f"Cannot {what} {num_layers} layers: the model has {layout.num_layers} "
            f"{'layer groups' if layout.layer_map.shared_layers else 'layers'} (0 … {layout.num_layers} allowed)."
        )


def _refuse_adapters(layout: ModelLayout, what: str, name: str) -> None:
    """Refuse a model with adapters for technique ``name``, with the registry's reason."""
    if layout.adapter_marker is not None:
        raise ValueError(
            f"Cannot {what} a model with adapters (PEFT, {layout.adapter_marker}*): {technique(name).with_adapters}."
            " Apply it to the model before wrapping it with PEFT, or fine-tune without adapters."
        )


def _warn_shared(layout: ModelLayout, num_layers: int, what: str) -> None:
    if layout.layer_map.shared_layers and num_layers > 0:
        logger.warning(
            "This model shares layer weights across depths (ALBERT): %s %d layer group(s) affects every layer "
            "that applies them — with one group, the whole encoder.",
            what,
            num_layers,
        )


def _initializer(model: nn.Module, path: str):
    """``_init_weights`` of the innermost transformers model holding the module at ``path`` — the backbone's own
    initializer (BERT's N(0, 0.02²)) also inside a module of your own — or ``None`` for none."""
    parts = path.split(".")
    for cut in range(len(parts), -1, -1):
        owner = model.get_submodule(".".join(parts[:cut])) if cut else model
        init_weights = getattr(owner, "_init_weights", None)
        if callable(init_weights):
            return init_weights
    return None


@torch.no_grad()
def _reinitialize(model: nn.Module, path: str) -> None:
    """Re-draw the weights of the module at ``path`` with the model's own initializer
    (``PreTrainedModel._init_weights``)."""
    module = model.get_submodule(path)
    init_weights = _initializer(model, path)
    for submodule in module.modules():
        # transformers >= 5 marks loaded tensors as initialised and its init functions skip them: clear it.
        for tensor in (*submodule.parameters(recurse=False), *submodule.buffers(recurse=False), submodule):
            if hasattr(tensor, "_is_hf_initialized"):
                del tensor._is_hf_initialized
        if init_weights is not None:
            init_weights(submodule)
        elif hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()


def reinit_top_layers(
    model: nn.Module, num_layers: int, *, reinit_pooler: bool = True, layer_map: LayerMap | None = None
) -> list[str]:
    """Re-initialise the top ``num_layers`` encoder layers (and the pooler) with the model's initializer.

    Zhang et al. 2021 (Sec. 5.2) find the top layers of pretrained BERT specialised to the pretraining task
    and re-drawing them — with BERT's own N(0, 0.02²) for weights, zeros for biases, ones for LayerNorm
    gains — makes few-sample fine-tuning more stable. The initializer is the transformers model's own
    (``_init_weights``), also when it sits inside a module of your own. The draw uses the global torch RNG, so it follows the
    seed set before it (the Trainer's ``--seed``).

    The re-initialised parameters are *novel* from then on: pass the returned names as ``novel=`` to
    :func:`transformers_fine_tuning.param_groups`, so L2-SP pulls them toward zero, not toward a random draw.
    For ALBERT (one shared layer group), ``num_layers=1`` re-initialises the whole shared encoder. Backbone
    modules applied after the stack (ModernBERT's ``final_norm``) belong to the top layer and are
    re-initialised with it.

    Refused for a model with adapters (PEFT): its base layers are frozen, so re-initialised layers would
    stay at their random values for the whole run.

    Returns:
        The names of the re-initialised parameters.
    """
    layout = model_layout(model, layer_map)
    _refuse_adapters(layout, "re-initialise layers of", "reinit")
    _check_num_layers(num_layers, layout, "re-initialise")
    _warn_shared(layout, num_layers, "re-initialising")
    prefixes = [
        f"{layout.layers_prefix}{index}."
        for index in range(layout.num_layers - num_layers, layout.num_layers)
    ]
    if num_layers > 0:
        prefixes.extend(layout.after_prefixes)
    if reinit_pooler and layout.pooler_prefix is not None:
        prefixes.append(layout.pooler_prefix)
    for prefix in prefixes:
        _reinitialize(model, prefix[:-1])
    return [name for name, _ in model.named_parameters() if name.startswith(tuple(prefixes))]


def _refuse_tied_embeddings(model: nn.Module, layout: ModelLayout) -> None:
    """Freezing the embeddings of a model whose head shares their matrix (a masked-LM decoder tied to the word
    embeddings) would freeze that head too: refused, with the two ways out."""
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    for shared in names.values():
        embedding = [name for name in shared if layout.depth(name) == 0]
        outside = [name for name in shared if layout.depth(name) != 0]
        if len(shared) > 1 and embedding and outside:
            raise ValueError(
                f"Cannot freeze the embeddings: {embedding[0]} is tied to {outside[0]} (the same tensor), so the "
                "head would be frozen with them. Freeze the layers only (embeddings=False / --freeze_embeddings "
                "false), or untie them first (config.tie_word_embeddings=False) and freeze the embeddings alone."
            )


def freeze_bottom_layers(
    model: nn.Module, num_layers: int, *, embeddings: bool = True, layer_map: LayerMap | None = None
) -> list[str]:
    """Freeze the embeddings (depth 0) and the bottom ``num_layers`` encoder layers.

    Frozen parameters get ``requires_grad=False``; :func:`transformers_fine_tuning.param_groups` leaves them
    out of the optimizer, so neither momentum nor weight decay can move them (as Composer's layer freezing
    removes them from the optimizer). For ALBERT (one shared layer group), ``num_layers=1`` freezes the
    whole shared encoder.

    Refused when the embeddings share their matrix with a head (a masked-LM decoder tied to the word
    embeddings): freezing one would freeze the other.

    Under adapters (PEFT) the pretrained weights are frozen already; what is frozen here is what still
    trains at those depths — the adapters of the bottom layers, which then stay at their initialisation
    (LoRA's B = 0: those layers stay exactly pretrained), as if only the upper layers had been adapted.

    Returns:
        The names of the parameters it froze (those that were trainable).
    """
    layout = model_layout(model, layer_map)
    _check_num_layers(num_layers, layout, "freeze")
    _warn_shared(layout, num_layers, "freezing")
    if embeddings:
        _refuse_tied_embeddings(model, layout)
    frozen = []
    for name, param in model.named_parameters():
        depth = layout.depth(name)
        if param.requires_grad and ((embeddings and depth == 0) or 1 <= depth <= num_layers):
            param.requires_grad_(False)
            frozen.append(name)
    if layout.adapter_marker is not None and not frozen and (embeddings or num_layers > 0):
        logger.warning(
            "Freezing the embeddings/bottom %d layers of a model with adapters froze nothing: nothing "
            "trains there (no adapter targets those modules).",
            num_layers,
        )
    return frozen


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
    _refuse_adapters(layout, "apply Mixout to", "mixout")
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


@torch.no_grad()
def apply_noisytune(
    model: nn.Module,
    noise_lambda: float = 0.15,
    *,
    seed: int = 0,
    exclude: Iterable[str] = (),
    clean: MutableMapping[str, Tensor] | None = None,
    layer_map: LayerMap | None = None,
) -> list[str]:
    """Perturb the pretrained parameters with uniform noise scaled by each one's own spread (NoisyTune).

    Wu et al. 2022, Eq. 1: before fine-tuning, every parameter matrix W of the pretrained model becomes::

        W̃ = W + U(−λ/2, λ/2) · std(W)

    elementwise independent uniform noise, scaled by the standard deviation of that matrix's own entries
    (``torch.std``, with Bessel's correction, as the authors' code computes it), λ = 0.15 by default (their best
    value). It counters the pretrained weights' overfitting to the pretraining tasks by a small, per-matrix
    calibrated perturbation before fine-tuning starts.

    Which parameters: every *trainable pretrained* parameter with at least two entries — weight matrices,
    embeddings, biases and LayerNorm parameters alike, as the authors' code perturbs every parameter (a
    constant one, e.g. a LayerNorm gain of ones, has std 0 and stays as it is). Left out: the new task head and
    the names in ``exclude`` (re-initialised layers: not pretrained; noise on a random draw is another random
    draw), frozen parameters (frozen means unchanged) and one-element parameters (no std). ALBERT's shared
    layer is one set of matrices and is perturbed once.

    The uniform draws come from a CPU generator seeded with ``seed``, in the model's parameter order — the same
    draws on CPU, CUDA and TPU, and none taken from the global RNG (the head's initialisation and the dropout
    masks of a seed are the same with and without NoisyTune); the scale std(W) is computed where W lives.
    Pass ``clean`` (a dict) to receive each perturbed parameter's value before the noise, e.g. as L2-SP anchors:
    :class:`~transformers_fine_tuning.NoisyTuneCallback` makes L2-SP pull toward those clean pretrained
    weights, not toward the noisy ones (the noise moves the starting point, not the prior).

    Refused for a model with adapters (PEFT): the weights it would perturb are frozen there, so the noise would
    stay for the whole run instead of being trained from.

    Returns:
        The names of the perturbed parameters (also logged, with λ and the seed, at INFO level).
    """
    if noise_lambda < 0.0:
        raise ValueError(f"NoisyTune's noise intensity λ must be >= 0, got {noise_lambda}.")
    layout = model_layout(model, layer_map)
    _refuse_adapters(layout, "apply NoisyTune to", "noisytune")
    targets = _noisytune_targets(model, layout, exclude)
    _add_noise(targets, noise_lambda, seed, clean)
    perturbed = [name for name, _ in targets]
    logger.info(
        "NoisyTune: uniform noise U(-λ/2, λ/2)·std(W) added to %d pretrained parameters (λ = %g, seed %d).",
        len(perturbed),
        noise_lambda,
        seed,
    )
    return perturbed


def _noisytune_targets(
    model: nn.Module, layout: ModelLayout, exclude: Iterable[str]
) -> list[tuple[str, nn.Parameter]]:
    """The parameters NoisyTune perturbs, in the model's order: trainable, pretrained, not in ``exclude``,
    with at least two entries (see :func:`apply_noisytune`)."""
    excluded = set(exclude)
    return [
        (name, param)
        for name, param in model.named_parameters()
        if param.requires_grad and param.numel() >= 2 and not layout.is_novel(name) and name not in excluded
    ]


def _add_noise(
    targets: list[tuple[str, nn.Parameter]],
    noise_lambda: float,
    seed: int,
    clean: MutableMapping[str, Tensor] | None,
) -> None:
    """Add U(−λ/2, λ/2) · std(W) to each of ``targets`` in place (Wu et al. 2022, Eq. 1), the draws from a CPU
    generator seeded with ``seed``; each value before the noise into ``clean``, on the host, if given."""
    # every std at once: one host synchronisation (one graph on XLA), not one per parameter
    stds = torch.stack([param.float().std() for _, param in targets]).tolist() if targets else []
    generator = torch.Generator().manual_seed(seed)
    for (name, param), std in zip(targets, stds, strict=True):
        noise = (torch.rand(param.shape, generator=generator) - 0.5) * (noise_lambda * std)
        if clean is not None:  # on the host: no device memory, and no lazy XLA tensor of the old values
            clean[name] = param.detach().to("cpu", copy=True)
        param.add_(noise.to(param.device, param.dtype))
