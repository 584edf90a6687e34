"""TrainerOptimizerInit on the XLA device: the optimizer holds the model's own (XLA) parameters, so training
trains — the fix for transformers issue #18635 — and the fine-tuning callbacks work there.

Run with the environment of ``scripts/xla_env.sh`` and ``PJRT_DEVICE=CPU`` (see ``conftest.py`` here).
"""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from transformers_fine_tuning import (
    AdamWL2SP,
    FreezeCallback,
    L2SPCallback,
    LLRDCallback,
    MixoutCallback,
    MixoutLinear,
    ReinitCallback,
    TrainerOptimizerInit,
)

from tiny_models import tiny_model


def _snapshot(model):
    return {name: param.detach().to("cpu", copy=True) for name, param in model.named_parameters()}


def _unwrapped(optimizer):
    """The optimizer that was built, without Accelerate's AcceleratedOptimizer around it."""
    return getattr(optimizer, "optimizer", optimizer)


def _losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def _assert_optimizer_holds_the_model_parameters(trainer):
    """Every optimizer tensor IS the model parameter of its name, lives on XLA, and every trainable one is held."""
    optimizer = _unwrapped(trainer.optimizer)
    named = dict(trainer.model.named_parameters())
    held = []
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            assert param is named[name], name
            assert param.device.type == "xla", (name, param.device)
            state = optimizer.state[param]
            assert state["exp_avg"].device.type == "xla" and state["step"].item() == trainer.state.global_step
            held.append(name)
    assert sorted(held) == sorted(name for name, param in named.items() if param.requires_grad)
    return optimizer


def _assert_trained(trainer, before, *, max_steps):
    """The run took its steps with a finite, moving loss, and every trainable parameter moved, on XLA."""
    assert trainer.state.global_step == max_steps
    losses = _losses(trainer)
    assert len(losses) == max_steps and all(math.isfinite(loss) for loss in losses)
    assert len(set(losses)) > 1, losses
    for name, param in trainer.model.named_parameters():
        assert param.device.type == "xla", (name, param.device)
        if param.requires_grad:
            assert not torch.equal(param.detach().cpu(), before[name]), f"{name} did not change"


def test_l2sp_reinit_llrd_with_adamwl2sp_train_the_model_on_xla(
    xla_device, xla_training_args, fixed_length_tokens
):
    model = tiny_model("bert", num_layers=2)
    pretrained = _snapshot(model)
    assert next(model.parameters()).device.type == "cpu"
    trainer = TrainerOptimizerInit(
        model=model,
        args=xla_training_args(max_steps=4),
        train_dataset=fixed_length_tokens(n=32, length=16),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"eps": 1e-6}),
        callbacks=[ReinitCallback(1), L2SPCallback(0.1, head_weight_decay=0.01), LLRDCallback(0.8)],
    )
    assert trainer.args.device == xla_device
    trainer.train()

    optimizer = _assert_optimizer_holds_the_model_parameters(trainer)
    assert isinstance(optimizer, AdamWL2SP)
    _assert_trained(trainer, pretrained, max_steps=4)

    groups = {group["name"]: group for group in optimizer.param_groups}
    assert all(group["eps"] == 1e-6 for group in groups.values())
    # LLRD: each depth's rate is 0.8 times the one above it (the schedule scales them all alike); layer 1,
    # re-initialised, is novel at its own depth.
    assert groups["embeddings_pretrained_decay"]["lr"] == pytest.approx(
        0.8 * groups["layer_0_pretrained_decay"]["lr"]
    )
    assert groups["layer_0_pretrained_decay"]["lr"] == pytest.approx(
        0.8 * groups["layer_1_novel_decay"]["lr"]
    )
    assert groups["embeddings_pretrained_decay"]["initial_lr"] == pytest.approx(1e-3 * 0.8**3)

    # L2-SP anchors: on the XLA device, equal to the pretrained values, for exactly the pretrained parameters;
    # the re-initialised top layer and the head are novel: no anchor, decayed toward zero instead.
    anchored = set()
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            if group["l2sp"] > 0:
                anchor = optimizer.state[param]["anchor"]
                assert anchor.device.type == "xla" and anchor is not param, name
                assert torch.equal(anchor.cpu(), pretrained[name]), name
                anchored.add(name)
            else:
                assert "anchor" not in optimizer.state[param], name
    novel_prefixes = ("bert.encoder.layer.1.", "bert.pooler.", "classifier.")
    assert anchored == {n for n in pretrained if not n.startswith(novel_prefixes)}
    assert "bert.encoder.layer.0.attention.self.query.weight" in anchored
    for name, group in groups.items():
        if name.endswith("pretrained_decay") or name.endswith("pretrained_no_decay"):
            assert (group["l2sp"], group["weight_decay"]) == (0.1, 0.0), name
        elif name.endswith("novel_decay"):
            assert (group["l2sp"], group["weight_decay"]) == (0.0, 0.01), name


def test_mixout_and_freeze_with_adamwl2sp_on_xla(xla_training_args, fixed_length_tokens):
    model = tiny_model("bert", num_layers=2)
    pretrained = _snapshot(model)
    trainer = TrainerOptimizerInit(
        model=model,
        args=xla_training_args(max_steps=4),
        train_dataset=fixed_length_tokens(n=32, length=16),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"l2sp": 0.05}),
        callbacks=[MixoutCallback(0.1), FreezeCallback(1)],
    )
    trainer.train()

    optimizer = _assert_optimizer_holds_the_model_parameters(trainer)
    _assert_trained(trainer, pretrained, max_steps=4)

    # Frozen: the embeddings and layer 0 — on the device, out of the optimizer, bit-for-bit unchanged.
    frozen = [n for n in pretrained if n.startswith(("bert.embeddings.", "bert.encoder.layer.0."))]
    named = dict(trainer.model.named_parameters())
    assert frozen
    for name in frozen:
        assert not named[name].requires_grad and named[name].device.type == "xla", name
        assert torch.equal(named[name].detach().cpu(), pretrained[name]), name
    assert all(named[name].requires_grad for name in pretrained if name not in frozen)

    # Mixout: the Linear layers of layer 1 mix toward their pretrained weights, kept on the device; their
    # weights are still the parameters the optimizer steps (and anchors), and they moved.
    dense = trainer.model.bert.encoder.layer[1].output.dense
    assert isinstance(dense, MixoutLinear) and dense.p == 0.1
    assert dense.mixout_target.device.type == "xla"
    assert torch.equal(dense.mixout_target.cpu(), pretrained["bert.encoder.layer.1.output.dense.weight"])
    assert any(dense.weight is p for group in optimizer.param_groups for p in group["params"])
    assert torch.equal(
        optimizer.state[dense.weight]["anchor"].cpu(), pretrained["bert.encoder.layer.1.output.dense.weight"]
    )
    assert not isinstance(trainer.model.classifier, MixoutLinear)


def test_optimizer_built_before_the_move_is_refused_and_would_train_nothing(
    xla_device, xla_training_args, fixed_length_tokens
):
    """The failure mode of transformers issue #18635, which building the optimizer late avoids."""
    # The optimizer a user builds in the script, on the CPU parameters, before the Trainer moves the model:
    model = tiny_model("bert", num_layers=2)
    early = AdamWL2SP(model.parameters(), lr=1e-3, l2sp=0.1)
    with pytest.raises(ValueError, match="not on the same device"):
        transformers.Trainer(
            model=model,
            args=xla_training_args(),
            train_dataset=fixed_length_tokens(),
            optimizers=(early, None),
        )
    # The Trainer had already moved the model when it refused: moving to XLA made NEW Parameter objects
    # (on CUDA, `.to()` swaps `.data` and keeps them), so the early optimizer holds orphaned CPU tensors.
    held = [p for group in early.param_groups for p in group["params"]]
    assert all(p.device.type == "xla" for p in model.parameters())
    assert all(p.device.type == "cpu" for p in held)
    assert not any(p is q for p in held for q in model.parameters())

    # Had it not been refused, stepping that optimizer trains nothing: the gradients land on the XLA
    # parameters, the optimizer sees none, and the model stays exactly as it was.
    before = _snapshot(model)
    batch = {key: value.to(xla_device) for key, value in fixed_length_tokens()[0:8].items()}
    model.train()
    model(**batch).loss.backward()
    early.step()
    assert all(p.grad is None for p in held)
    assert all(p.grad is not None for p in model.parameters())
    for name, param in model.named_parameters():
        assert torch.equal(param.detach().cpu(), before[name]), name
    assert not any("exp_avg" in state for state in early.state.values())


def test_pretrained_minilm_trains_with_l2sp_on_xla(minilm_path, xla_training_args, tmp_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    pretrained = _snapshot(model)
    sentences = [
        ("a gripping, beautifully acted film", 1),
        ("the plot makes no sense at all", 0),
        ("one of the best performances this year", 1),
        ("dull, slow and far too long", 0),
    ] * 2
    encoded = tokenizer([s for s, _ in sentences], padding="max_length", truncation=True, max_length=32)
    dataset = [
        {**{key: values[i] for key, values in encoded.items()}, "labels": label}
        for i, (_, label) in enumerate(sentences)
    ]
    trainer = TrainerOptimizerInit(
        model=model,
        args=xla_training_args(max_steps=2, per_device_train_batch_size=4, learning_rate=5e-5),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[L2SPCallback(0.1)],
    )
    trainer.train()

    optimizer = _assert_optimizer_holds_the_model_parameters(trainer)
    assert isinstance(optimizer, AdamWL2SP)  # chosen by L2SPCallback, no optimizer was given
    _assert_trained(trainer, pretrained, max_steps=2)
    anchored = set()
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            if group["l2sp"] > 0:
                anchor = optimizer.state[param]["anchor"]
                assert anchor.device.type == "xla" and torch.equal(anchor.cpu(), pretrained[name]), name
                anchored.add(name)
    # Every parameter of the pretrained backbone is anchored; the new head is not.
    assert anchored == {name for name in pretrained if name.startswith("bert.")}
    assert "anchor" not in optimizer.state[trainer.model.classifier.weight]


def test_a_pretrained_masked_lm_head_stays_pretrained_after_the_move_to_xla(xla_training_args, tmp_path):
    """What from_pretrained loaded is read before the Trainer moves the model (the move makes new tensors): the
    masked-LM head of a masked-LM checkpoint is anchored on XLA, as on the CPU."""
    from tiny_models import tiny_config

    torch.manual_seed(0)
    transformers.BertForPreTraining(tiny_config("bert", num_layers=2)).save_pretrained(tmp_path / "ckpt")
    model = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "ckpt")
    pretrained = _snapshot(model)
    generator = torch.Generator().manual_seed(1)
    dataset = []
    for _ in range(8):
        ids = torch.randint(5, 99, (8,), generator=generator)
        labels = torch.full((8,), -100)
        labels[2] = ids[2]
        dataset.append({"input_ids": ids, "labels": labels})
    trainer = TrainerOptimizerInit(
        model=model,
        args=xla_training_args(max_steps=1, per_device_train_batch_size=4),
        train_dataset=dataset,
        callbacks=[L2SPCallback(0.1)],
    )
    trainer.train()
    optimizer = _unwrapped(trainer.optimizer)
    anchored = {
        name for group in optimizer.param_groups for name in group["param_names"] if group["l2sp"] > 0
    }
    assert "cls.predictions.transform.dense.weight" in anchored
    assert anchored == set(pretrained)  # nothing was new: every parameter came from the checkpoint
