"""LLRD's floor and freeze threshold (timm's ``min_scale`` and ``no_opt_scale``): group learning rates at the
floor, the depths below the threshold frozen — out of the optimizer, bitwise unchanged — and the flags."""

from __future__ import annotations

import pytest
import torch

from transformers_fine_tuning import (
    LLRDCallback,
    ReinitCallback,
    TrainerOptimizerInit,
    model_layout,
    param_groups,
)
from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.build import fine_tuning_callbacks
from transformers_fine_tuning.optim.param_groups import frozen_depths, layer_scale

from tiny_models import FirstTokenTask, tiny_model, training_args

LR = 1e-3


def _rates(groups) -> dict[str, float]:
    return {name: group["lr"] for group in groups for name in group["param_names"]}


def test_the_floor_lifts_the_deep_layers_and_leaves_the_rest():
    model = tiny_model("bert", num_layers=4)
    layout = model_layout(model)
    rates = _rates(param_groups(model, lr=LR, layer_decay=0.5, layer_decay_floor=0.1))
    # scales ξ^(L+1−d) with ξ = 0.5, L = 4: 0.031, 0.0625, 0.125, 0.25, 0.5, head 1 — the first two lifted to 0.1
    expected = {0: 0.1, 1: 0.1, 2: 0.125, 3: 0.25, 4: 0.5, 5: 1.0}
    for name, rate in rates.items():
        assert rate == pytest.approx(LR * expected[layout.depth(name)]), name
    without = _rates(param_groups(model, lr=LR, layer_decay=0.5))
    assert without["bert.embeddings.word_embeddings.weight"] == pytest.approx(LR * 0.5**5)
    with pytest.raises(ValueError, match="layer_decay_floor must be in"):
        param_groups(model, lr=LR, layer_decay_floor=0.1)


def test_frozen_depths_are_the_bottom_run_below_the_threshold_after_the_floor():
    assert [layer_scale(d, 4, 0.5) for d in range(6)] == [0.5**5, 0.5**4, 0.5**3, 0.25, 0.5, 1.0]
    assert frozen_depths(4, 0.5, None, 0.1) == 2  # embeddings (0.031) and layer 0 (0.0625)
    assert frozen_depths(4, 0.5, 0.2, 0.1) == 0  # the floor lifts them above the threshold
    assert frozen_depths(4, 0.5, None, 1.0) == 5  # everything but the head
    assert frozen_depths(4, 0.5, None, None) == 0


def test_the_threshold_freezes_the_bottom_out_of_the_optimizer(tmp_path):
    model = tiny_model("bert", num_layers=4)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, max_steps=3),
        train_dataset=FirstTokenTask(),
        callbacks=[LLRDCallback(0.5, freeze_below=0.1)],
    )
    trainer.train()
    layout = model_layout(model)
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    held = {name for group in optimizer.param_groups for name in group["param_names"]}
    for name, param in model.named_parameters():
        if layout.depth(name) <= 1:  # the embeddings and layer 0
            assert not param.requires_grad and name not in held and torch.equal(param, before[name]), name
        else:
            assert param.requires_grad and name in held, name
    rates = {name: group["initial_lr"] for group in optimizer.param_groups for name in group["param_names"]}
    assert rates["bert.encoder.layer.1.output.dense.weight"] == pytest.approx(LR * 0.5**3)


def test_frozen_depths_that_would_be_reinitialised_are_refused(tmp_path):
    with pytest.raises(
        ValueError, match=r"ReinitCallback\(4\) and LLRDCallback\(0.5, freeze_below=0.1\) overlap"
    ):
        TrainerOptimizerInit(
            model=tiny_model("bert", num_layers=4),
            args=training_args(tmp_path),
            callbacks=[LLRDCallback(0.5, freeze_below=0.1), ReinitCallback(4)],
        )


def test_the_flags(tmp_path):
    out = ["--output_dir", str(tmp_path)]
    args = parse_fine_tune_args(
        ["--layer_decay", "0.5", "--layer_decay_floor", "0.1", "--layer_decay_freeze_below", "0.05", *out]
    )
    (callback,) = [cb for cb in fine_tuning_callbacks(args.fine_tuning) if isinstance(cb, LLRDCallback)]
    assert (callback.decay, callback.floor, callback.freeze_below) == (0.5, 0.1, 0.05)
    assert callback.describe() == "--layer_decay 0.5"
    for flags, message in [
        (["--layer_decay_floor", "0.1"], "--layer_decay_floor applies with --layer_decay only"),
        (["--layer_decay_freeze_below", "0.1"], "--layer_decay_freeze_below applies with --layer_decay only"),
        (
            ["--layer_decay", "0.9", "--layer_decay_floor", "0"],
            r"--layer_decay_floor 0.0: must be in \(0, 1\]",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_fine_tune_args([*flags, *out])
