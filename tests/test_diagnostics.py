"""Instability diagnostics: per-depth gradient norms against a direct computation, a synthetic loss spike with
its checkpoint, an injected NaN, and the early-failure flag on a model that cannot learn."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import transformers

from transformers_fine_tuning import (
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
    TrainerOptimizerInit,
    grad_norms_by_depth,
    prior_loss,
)
from transformers_fine_tuning.diagnostics import LossSpikeDetector

from tiny_models import FirstTokenTask, tiny_model, training_args


def args_for(tmp_path, **overrides):
    return training_args(tmp_path, **{"max_steps": 4, "seed": 0, **overrides})


def no_dropout_bert():
    return tiny_model("bert", num_layers=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_grad_norms_equal_a_direct_computation(tmp_path):
    data = FirstTokenTask(n=8)
    model = no_dropout_bert()
    reference = no_dropout_bert()
    callback = GradNormCallback(every=1)
    trainer = TrainerOptimizerInit(
        model=model,
        args=args_for(tmp_path, max_steps=1, max_grad_norm=0.0),  # no clipping: the raw gradients
        train_dataset=data,
        callbacks=[callback],
    )
    trainer.train()

    batch = {"input_ids": data.input_ids, "labels": data.labels}  # the one batch of the epoch, in any order
    reference.train()
    reference(**batch).loss.backward()
    expected = {}
    for name, param in reference.named_parameters():
        if name.startswith("classifier."):
            part = "head"
        elif name.startswith("bert.pooler."):
            part = "pooler"
        elif name.startswith("bert.encoder.layer."):
            part = f"layer_{int(name.split('.')[3]):02d}"
        else:
            part = "embeddings"
        expected[part] = expected.get(part, 0.0) + param.grad.double().square().sum().item()
    expected = {part: math.sqrt(value) for part, value in expected.items()}
    expected["total"] = math.sqrt(sum(v**2 for v in expected.values()))

    logged = callback.history[0]
    assert logged["step"] == 1
    assert set(logged) - {"step"} == set(expected) == {"embeddings", "layer_00", "layer_01", "layer_02", "pooler",
                                                        "head", "total"}  # fmt: skip
    for part, value in expected.items():
        assert logged[part] == pytest.approx(value, rel=1e-4), part
    # and through the Trainer's own logs, where report_to integrations read them
    entry = next(e for e in trainer.state.log_history if "grad_norm/layer_00" in e)
    assert entry["step"] == 1 and entry["grad_norm/head"] == pytest.approx(expected["head"], rel=1e-4)
    assert entry["grad_norm"] == pytest.approx(expected["total"], rel=1e-4)  # the Trainer's own total


def test_grad_norms_function_skips_frozen_parameters():
    model = tiny_model("roberta", num_layers=2)
    for p in model.roberta.embeddings.parameters():
        p.requires_grad_(False)
    model(input_ids=torch.randint(5, 99, (2, 6)), labels=torch.tensor([0, 1])).loss.backward()
    norms = grad_norms_by_depth(model)
    assert set(norms) == {"layer_00", "layer_01", "head", "total"}
    assert all(value > 0 for value in norms.values())


def test_spike_detector_on_a_known_sequence():
    detector = LossSpikeDetector(window=20, threshold=6.0, min_history=5)
    losses = [1.0 - 0.01 * i + 0.005 * (-1) ** i for i in range(30)]
    assert all(detector.update(loss) is None for loss in losses)
    assert detector.update(3.0) > 6.0  # a jump of ~2 against a MAD of ~0.05
    assert detector.update(0.70) is None  # the spike did not enter the window
    assert detector.update(float("nan")) is None


class WeightsAt(transformers.TrainerCallback):
    def __init__(self, step):
        self.step, self.weights = step, None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            self.weights = {n: p.detach().clone() for n, p in model.named_parameters()}


def test_synthetic_spike_is_detected_and_the_state_before_it_saved(tmp_path):
    # 40 steps on a learnable task, in order; the batch of step 36 has every label flipped
    data = FirstTokenTask(n=320, flip=range(35 * 8, 36 * 8))
    spike_callback = LossSpikeCallback(window=20, threshold=6.0, save_checkpoint=True)
    before = WeightsAt(35)
    trainer = TrainerOptimizerInit(
        model=no_dropout_bert(),
        args=args_for(tmp_path, max_steps=40, learning_rate=5e-3, train_sampling_strategy="sequential"),
        train_dataset=data,
        callbacks=[spike_callback, before],
    )
    trainer.train()
    assert [s["step"] for s in spike_callback.spikes] == [36]
    spike = spike_callback.spikes[0]
    assert spike["checkpoint"].endswith("spike-step-35")
    saved = transformers.AutoModelForSequenceClassification.from_pretrained(spike["checkpoint"])
    for name, param in saved.named_parameters():
        assert torch.equal(param, before.weights[name]), name
    assert "loss_spike/score" in next(e for e in trainer.state.log_history if e.get("step") == 36)
    assert spike_callback.report()["loss_spikes"][0]["loss"] > 1.0


class NanAtStep:
    """A forward hook on the classifier that turns the logits to NaN at one training step."""

    def __init__(self, model, step):
        self.calls, self.step = 0, step
        model.classifier.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        if module.training:
            self.calls += 1
            if self.calls == self.step:
                return output * float("nan")
        return output


def test_injected_nan_stops_training_before_the_update_with_a_message(tmp_path, caplog):
    model = no_dropout_bert()
    NanAtStep(model, step=3)
    guard = NonFiniteGuardCallback()
    before = WeightsAt(2)
    trainer = TrainerOptimizerInit(
        model=model,
        args=args_for(tmp_path, max_steps=10),
        train_dataset=FirstTokenTask(),
        callbacks=[guard, before],
    )
    with caplog.at_level(logging.ERROR):
        trainer.train()
    assert trainer.state.global_step == 3  # stopped at the bad step, not at max_steps
    assert guard.event["step"] == 3 and math.isnan(guard.event["loss"])
    assert "Non-finite loss and gradient norm at step 3" in caplog.text and "learning rate" in caplog.text
    for name, param in trainer.model.named_parameters():  # the NaN update was never applied
        assert torch.equal(param, before.weights[name]), name
    saved = tmp_path / "out" / "non-finite-step-3"
    assert (saved / "event.json").is_file() and (saved / "optimizer.pt").is_file()


def test_prior_loss():
    assert prior_loss([0, 1, 0, 1]) == pytest.approx(math.log(2))
    assert prior_loss([0, 0, 0, 1]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert prior_loss([1.0, 2.0, 3.0], regression=True) == pytest.approx(2 / 3)


@pytest.mark.parametrize(("learning_rate", "flagged"), [(0.0, True), (5e-3, False)])
def test_early_failure_flags_a_model_that_cannot_learn(tmp_path, learning_rate, flagged):
    data = FirstTokenTask(n=160)
    callback = EarlyFailureCallback(prior_loss(data.labels.tolist()), after=0.5, stop=True)
    trainer = TrainerOptimizerInit(
        model=no_dropout_bert(),
        args=args_for(tmp_path, max_steps=40, learning_rate=learning_rate, warmup_steps=0),
        train_dataset=data,
        callbacks=[callback],
    )
    trainer.train()
    verdict = callback.report()["early_failure"]
    assert verdict["flagged"] is flagged and verdict["step"] == 20
    assert trainer.state.global_step == (20 if flagged else 40)  # stop=True ends a flagged run there
    assert verdict["mean_loss"] >= 0.6 if flagged else verdict["mean_loss"] < 0.6


def test_diagnostics_refuse_a_plain_trainer(tmp_path):
    trainer = transformers.Trainer(
        model=no_dropout_bert(),
        args=args_for(tmp_path),
        train_dataset=FirstTokenTask(),
        callbacks=[GradNormCallback()],
    )
    with pytest.raises(RuntimeError, match="TrainerOptimizerInit"):
        trainer.train()
