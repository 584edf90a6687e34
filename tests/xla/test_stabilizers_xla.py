"""NoisyTune, EMA, R3F and WiSE-FT together under TrainerOptimizerInit on the XLA device: the noise is the
seeded draw of the CPU, L2-SP's anchors stay the clean pretrained weights on the device, the R3F term is
logged, the EMA average lives on the device, equals the hand-computed one and travels in the checkpoint's
optimizer.pt, and WiSE-FT interpolates the anchors with it.

Run with the environment of ``scripts/xla_env.sh`` and ``PJRT_DEVICE=CPU`` (see ``conftest.py`` here).
"""

from __future__ import annotations

import math

import torch
import transformers

from transformers_fine_tuning import (
    EMACallback,
    L2SPCallback,
    NoisyTuneCallback,
    R3FCallback,
    TrainerOptimizerInit,
    WiSEFTCallback,
)
from transformers_fine_tuning.trainer.trainer_optimizer_init import CALLBACK_STATE_KEY

from tiny_models import tiny_model


class CpuIterates(transformers.TrainerCallback):
    """The trainable parameters, copied to the CPU, after every optimizer step.

    The step's graph is executed once first (``torch_xla.sync()``; the Trainer leaves that to the next batch of
    its device loader): a tensor copied while its graph is pending would compile and run a graph of its own."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        import torch_xla

        torch_xla.sync()
        self.steps.append({n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad})


def test_noisytune_ema_r3f_and_wise_ft_on_xla(xla_training_args, fixed_length_tokens, tmp_path):
    model = tiny_model("bert", num_layers=2)
    pretrained = {name: param.detach().clone() for name, param in model.named_parameters()}
    iterates, noisy, ema, wise = (
        CpuIterates(),
        NoisyTuneCallback(0.15, seed=2),
        EMACallback(0.6),
        WiSEFTCallback(0.5),
    )
    trainer = TrainerOptimizerInit(
        model=model,
        args=xla_training_args(max_steps=3, save_strategy="steps", save_steps=3),
        train_dataset=fixed_length_tokens(n=24, length=16),
        callbacks=[L2SPCallback(0.1), noisy, iterates, ema, R3FCallback(1.0, eps=1e-3), wise],
    )
    # NoisyTune on the device: the CPU generator's draws, scaled by each matrix's std
    generator = torch.Generator().manual_seed(2)
    start = {name: param.detach().cpu() for name, param in trainer.model.named_parameters()}
    assert next(trainer.model.parameters()).device.type == "xla"
    for name in noisy.perturbed:
        draw = torch.rand(pretrained[name].shape, generator=generator) - 0.5
        expected = pretrained[name] + draw * (0.15 * pretrained[name].std().item())
        torch.testing.assert_close(start[name], expected, rtol=1e-5, atol=1e-7, msg=name)
    trainer.train()

    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    anchors = {}
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            if group["l2sp"] > 0:
                anchor = optimizer.state[param]["anchor"]
                assert anchor.device.type == "xla" and torch.equal(anchor.cpu(), pretrained[name]), name
                anchors[name] = anchor.cpu()
    assert set(noisy.perturbed) <= set(anchors)

    terms = [entry["loss_term/r3f"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(terms) == 3 and all(math.isfinite(t) and t >= 0 for t in terms)

    # the EMA, on the device, is the bias-corrected average of θ₁ … θ₃; WiSE-FT mixed it with the anchors
    weights = [(1 - 0.6) * 0.6 ** (3 - i) / (1 - 0.6**3) for i in (1, 2, 3)]
    averaged = {
        name: sum(w * step[name] for w, step in zip(weights, iterates.steps, strict=True))
        for name in iterates.steps[0]
    }
    assert all(average.device.type == "xla" for average in ema.average.averages)
    for name, param in trainer.model.named_parameters():
        expected = torch.lerp(anchors[name], averaged[name], 0.5) if name in anchors else averaged[name]
        torch.testing.assert_close(param.detach().cpu(), expected, rtol=1e-5, atol=1e-6, msg=name)

    # the average went into the step-3 checkpoint with the optimizer's state
    saved = torch.load(tmp_path / "out" / "checkpoint-3" / "optimizer.pt", weights_only=True)[
        CALLBACK_STATE_KEY
    ]
    average = saved["EMACallback"]
    assert average["num_averaged"] == 3
    for name, tensor in average["averages"].items():
        torch.testing.assert_close(tensor.cpu(), averaged[name], rtol=1e-5, atol=1e-6, msg=name)
