"""Instability diagnostics: per-depth gradient norms against a direct computation, a synthetic loss spike with
its checkpoint, an injected NaN, and the early-failure flag on a model that cannot learn."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import transformers

from transformers_fine_tuning import (
    AdamWL2SP,
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


class NanOnSteps:
    """A forward hook on the classifier that turns the logits to NaN on the given training forward passes."""

    def __init__(self, model, calls):
        self.count, self.calls = 0, set(calls)
        model.classifier.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        if module.training:
            self.count += 1
            if self.count in self.calls:
                return output * float("nan")
        return output


class RatesAt(transformers.TrainerCallback):
    """Each step's learning rate as the update used it; the optimizer's moments at the end of step 4."""

    def __init__(self):
        self.rates, self.moments_at_4 = {}, None

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if state.global_step == 4:
            self.moments_at_4 = [
                optimizer.state[p]["exp_avg"].clone() for g in optimizer.param_groups for p in g["params"]
            ]

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.rates[state.global_step + 1] = optimizer.param_groups[0]["lr"]


def test_a_diverging_run_rolls_back_to_its_last_snapshot_at_a_lower_rate_and_recovers(tmp_path):
    model = no_dropout_bert()
    NanOnSteps(model, calls=[5])  # step 5's forward pass diverges
    guard = NonFiniteGuardCallback(rollbacks=2, lr_factor=0.5, snapshot_every=2)
    at_4, rates = WeightsAt(4), RatesAt()
    trainer = TrainerOptimizerInit(
        model=model,
        args=args_for(tmp_path, max_steps=8, lr_scheduler_type="constant"),
        train_dataset=FirstTokenTask(),
        callbacks=[guard, at_4, rates],
        optimizer_cls_and_kwargs=(AdamWL2SP, {"l2sp": 0.1}),
    )
    snapshots = []
    original = guard._roll_back

    def spy(step, loss, grad_norm, model, optimizer, scheduler, cause):
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
        original(step, loss, grad_norm, model, optimizer, scheduler, cause)
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
        inner = getattr(optimizer, "optimizer", optimizer)
        snapshots.append([inner.state[p]["exp_avg"].clone() for g in inner.param_groups for p in g["params"]])

    guard._roll_back = spy
    trainer.train()
    assert trainer.state.global_step == 8  # it recovered and ran to the end
    assert guard.event is None and len(guard.rollbacks) == 1
    record = guard.rollbacks[0]
    assert (record["step"], record["restored_step"], record["lr_factor"]) == (5, 4, 0.5)
    assert record["cause"] == "non_finite"
    assert math.isnan(record["loss"])
    # restored: the weights of step 4's snapshot (step 5's update was never applied either way)
    assert all(torch.equal(snapshots[1][name], at_4.weights[name]) for name in at_4.weights)
    assert all(torch.equal(got, want) for got, want in zip(snapshots[2], rates.moments_at_4, strict=True))
    assert rates.rates[4] == pytest.approx(1e-3) and rates.rates[6] == pytest.approx(
        5e-4
    )  # halved from then on
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert guard.report()["rollbacks"] == guard.rollbacks


def test_more_divergences_than_roll_backs_stop_the_run(tmp_path):
    model = no_dropout_bert()
    NanOnSteps(model, calls=[3, 5])
    guard = NonFiniteGuardCallback(rollbacks=1, snapshot_every=1, save_state=False)
    trainer = TrainerOptimizerInit(
        model=model, args=args_for(tmp_path, max_steps=10), train_dataset=FirstTokenTask(), callbacks=[guard]
    )
    trainer.train()
    assert [r["step"] for r in guard.rollbacks] == [3] and guard.event["step"] == 5
    assert trainer.state.global_step == 5  # stopped at the second divergence
    with pytest.raises(ValueError, match="rollbacks must be >= 0"):
        NonFiniteGuardCallback(rollbacks=-1)


def test_a_loss_spike_is_rolled_back_before_its_update_and_the_run_goes_on(tmp_path):
    # the learnable task of the spike test: the batch of step 36 has every label flipped
    data = FirstTokenTask(n=320, flip=range(35 * 8, 36 * 8))
    guard = NonFiniteGuardCallback(
        rollbacks=1, lr_factor=0.5, snapshot_every=5, spike_threshold=6.0, spike_window=20, save_state=False
    )
    spikes, at_35, rates = LossSpikeCallback(window=20, threshold=6.0), WeightsAt(35), RatesAt()
    restored = []
    original = guard._roll_back

    def spy(step, loss, grad_norm, model, optimizer, scheduler, cause):
        original(step, loss, grad_norm, model, optimizer, scheduler, cause)
        restored.append({n: p.detach().clone() for n, p in model.named_parameters()})

    guard._roll_back = spy
    trainer = TrainerOptimizerInit(
        model=no_dropout_bert(),
        args=args_for(
            tmp_path,
            max_steps=40,
            learning_rate=5e-3,
            lr_scheduler_type="constant",
            train_sampling_strategy="sequential",
        ),
        train_dataset=data,
        callbacks=[spikes, guard, at_35, rates],
    )
    trainer.train()
    assert [s["step"] for s in spikes.spikes] == [36]  # the same step the spike test finds
    assert trainer.state.global_step == 40 and guard.event is None
    (record,) = guard.rollbacks
    assert (record["step"], record["cause"], record["restored_step"], record["lr_factor"]) == (
        36,
        "loss_spike",
        35,
        0.5,
    )
    assert all(torch.equal(restored[0][name], at_35.weights[name]) for name in at_35.weights)
    assert rates.rates[35] == pytest.approx(5e-3) and rates.rates[37] == pytest.approx(2.5e-3)  # halved
    with pytest.raises(ValueError, match="give rollbacks >= 1"):
        NonFiniteGuardCallback(spike_threshold=6.0)


def test_the_flags_build_a_guard_that_rolls_back_spikes():
    from transformers_fine_tuning.arguments import DiagnosticsArguments
    from transformers_fine_tuning.build import diagnostics_callbacks

    flags = DiagnosticsArguments(
        rollback_on_divergence=2, rollback_on_spikes=True, loss_spike_threshold=5.0, loss_spike_window=30
    )
    (guard,) = diagnostics_callbacks(flags, prior_loss=0.69)
    assert (guard.max_rollbacks, guard._spikes.threshold, guard._spikes.history.maxlen) == (2, 5.0, 30)
    (plain,) = diagnostics_callbacks(DiagnosticsArguments(rollback_on_divergence=2), prior_loss=0.69)
    assert plain._spikes is None
