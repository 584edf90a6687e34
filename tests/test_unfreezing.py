"""LP-FT and gradual unfreezing: the head-only stage changes only the head, frozen groups thaw in order with their
own warm-up, their optimizer state is created when they thaw, and what cannot work is refused."""

from __future__ import annotations

import pytest
import torch
import transformers

from transformers_fine_tuning import (
    GradualUnfreezingCallback,
    L2SPCallback,
    LLRDCallback,
    LPFTCallback,
    TrainerOptimizerInit,
    apply_lora,
    model_layout,
)
from transformers_fine_tuning.adapters import peft_available
from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.build import fine_tuning_callbacks

from tiny_models import FirstTokenTask, tiny_model, training_args

LR = 1e-3


class Recorder(transformers.TrainerCallback):
    """The parameters after every optimizer step, and each group's learning rate as the step used it."""

    def __init__(self):
        self.params: dict[int, dict[str, torch.Tensor]] = {}
        self.rates: dict[int, list[float]] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.params[0] = {name: param.detach().clone() for name, param in model.named_parameters()}

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.rates[state.global_step] = [group["lr"] for group in optimizer.param_groups]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.params[state.global_step] = {
            name: param.detach().clone() for name, param in model.named_parameters()
        }


def _changed(recorder: Recorder, step: int) -> set[str]:
    before, after = recorder.params[step - 1], recorder.params[step]
    return {name for name in after if not torch.equal(after[name], before[name])}


def _train(tmp_path, callbacks, *, max_steps, num_layers=2, **kwargs):
    model = tiny_model("bert", num_layers=num_layers)
    recorder = Recorder()
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, max_steps=max_steps, lr_scheduler_type="constant", **kwargs),
        train_dataset=FirstTokenTask(),
        callbacks=[*callbacks, recorder],
    )
    trainer.train()
    return trainer, recorder


def test_lp_ft_probes_with_the_head_alone_then_fine_tunes_everything(tmp_path):
    probe = LPFTCallback(3, head_lr=5e-3)
    trainer, recorder = _train(tmp_path, [probe, L2SPCallback(0.1)], max_steps=6)
    head = {"classifier.weight", "classifier.bias"}
    for step in (1, 2, 3):  # the probe: the head alone moves — no step, decay or L2-SP pull on the backbone
        assert _changed(recorder, step) == head, step
    assert _changed(recorder, 4) > head and "bert.encoder.layer.0.output.dense.weight" in _changed(
        recorder, 4
    )
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    named = dict(trainer.model.named_parameters())
    # the head's state runs through; the backbone's was created when it thawed
    assert optimizer.state[named["classifier.weight"]]["step"].item() == 6
    assert optimizer.state[named["bert.encoder.layer.0.output.dense.weight"]]["step"].item() == 3
    assert torch.equal(  # L2-SP's anchors are the pretrained weights, untouched by the probe
        optimizer.state[named["bert.encoder.layer.0.output.dense.weight"]]["anchor"],
        recorder.params[0]["bert.encoder.layer.0.output.dense.weight"],
    )
    head_groups = [i for i, g in enumerate(optimizer.param_groups) if set(g["param_names"]) <= head]
    assert head_groups and all(
        recorder.rates[step][i] == pytest.approx(5e-3) for i in head_groups for step in (0, 2)
    )
    assert all(
        recorder.rates[4][i] == pytest.approx(LR) for i in head_groups
    )  # after the probe: the run's rate
    assert all(param.requires_grad for param in trainer.model.parameters())


def test_gradual_unfreezing_thaws_one_depth_per_stage_from_the_top_with_its_own_warm_up(tmp_path):
    schedule = GradualUnfreezingCallback(2, warmup=2)
    trainer, recorder = _train(tmp_path, [schedule, LLRDCallback(0.5)], max_steps=8)
    layout = model_layout(trainer.model)

    def depths(step):
        return {layout.depth(name) for name in _changed(recorder, step)}

    # depth 3 = head and pooler from the start, then layer 1 (depth 2), layer 0 (1), the embeddings (0)
    assert depths(1) == depths(2) == {3}
    assert depths(3) == depths(4) == {2, 3}
    assert depths(5) == depths(6) == {1, 2, 3}
    assert depths(7) == {0, 1, 2, 3}
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    layer_1 = next(
        i
        for i, g in enumerate(optimizer.param_groups)
        if layout.depth(g["param_names"][0]) == 2 and g["params"]
    )
    scheduled = LR * 0.5  # LLRD's rate for the top layer, under a constant schedule
    # thawed at step 2: its own ramp 1/3, 2/3 of its rate, then all of it
    assert [recorder.rates[step][layer_1] for step in (2, 3, 4, 5)] == pytest.approx(
        [scheduled / 3, 2 * scheduled / 3, scheduled, scheduled]
    )
    assert optimizer.param_groups[layer_1]["lr"] == pytest.approx(scheduled)  # given back to the scheduler


def test_a_run_that_ends_before_its_last_stage_leaves_nothing_frozen(tmp_path):
    trainer, recorder = _train(tmp_path, [GradualUnfreezingCallback(3)], max_steps=4)
    layout = model_layout(trainer.model)
    assert all(
        layout.depth(name) >= 2 for name in _changed(recorder, 4)
    )  # the embeddings never thawed in time
    assert all(param.requires_grad for param in trainer.model.parameters())


def test_what_cannot_work_is_refused(tmp_path):
    model = tiny_model("bert", num_layers=2)
    with pytest.raises(ValueError, match="one unfreezing schedule at a time"):
        TrainerOptimizerInit(
            model=model,
            args=training_args(tmp_path),
            callbacks=[LPFTCallback(2), GradualUnfreezingCallback(2)],
        )
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, max_steps=4),
        train_dataset=FirstTokenTask(),
        callbacks=[LPFTCallback(4)],
    )
    with pytest.raises(ValueError, match="leaves nothing to probe or nothing to fine-tune"):
        trainer.train()
    with pytest.raises(ValueError, match="head_steps must be > 0"):
        LPFTCallback(0)


@pytest.mark.skipif(not peft_available(), reason="needs PEFT")
def test_lp_ft_under_lora_probes_with_the_head_then_trains_the_adapters(tmp_path):
    model = apply_lora(tiny_model("bert", num_layers=2), 2)
    recorder = Recorder()
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, max_steps=4, lr_scheduler_type="constant"),
        train_dataset=FirstTokenTask(),
        callbacks=[LPFTCallback(2), recorder],
    )
    trainer.train()
    layout = model_layout(model)
    for step in (1, 2):
        changed = _changed(recorder, step)
        assert changed and all("modules_to_save" in name for name in changed), step
    assert any(layout.is_adapter(name) for name in _changed(recorder, 4))  # B moves once its gradients flow


def test_the_flags(tmp_path):
    out = ["--output_dir", str(tmp_path)]
    args = parse_fine_tune_args(
        ["--lp_ft_head_steps", "0.25", "--lp_ft_head_lr", "1e-3", "--unfreeze_warmup", "5", *out]
    )
    (probe,) = [cb for cb in fine_tuning_callbacks(args.fine_tuning) if isinstance(cb, LPFTCallback)]
    assert (probe.head_steps, probe.head_lr, probe.warmup, probe.describe()) == (
        0.25,
        1e-3,
        5,
        "--lp_ft_head_steps 0.25",
    )
    args = parse_fine_tune_args(["--gradual_unfreeze", "10", *out])
    (stages,) = [
        cb for cb in fine_tuning_callbacks(args.fine_tuning) if isinstance(cb, GradualUnfreezingCallback)
    ]
    assert (stages.stage_steps, stages.warmup) == (10, 0)
    for flags, message in [
        (["--lp_ft_head_steps", "3", "--gradual_unfreeze", "2"], "give one of them"),
        (["--lp_ft_head_lr", "1e-3"], "--lp_ft_head_lr applies with --lp_ft_head_steps only"),
        (["--unfreeze_warmup", "3"], "--unfreeze_warmup applies with"),
        (["--gradual_unfreeze", "-1"], "--gradual_unfreeze -1.0: must be > 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_fine_tune_args([*flags, *out])
