"""NoisyTune, weight averaging (EMA, SWA), R3F and WiSE-FT — the functions and the callbacks under
TrainerOptimizerInit — checked by their numbers on tiny models: the noise's scale per matrix, the averages
against hand-computed ones, the R3F term against a direct symmetric KL, WiSE-FT's interpolation and its α
chosen on held-out data; with L2-SP anchors, Mixout targets and resumed checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import transformers

from transformers_fine_tuning import (
    EMACallback,
    FreezeCallback,
    L2SPCallback,
    LossTermCallback,
    MixoutCallback,
    MixoutLinear,
    NoisyTuneCallback,
    R3FCallback,
    ReinitCallback,
    SWACallback,
    TrainerOptimizerInit,
    WeightAverage,
    WiSEFTCallback,
    apply_noisytune,
    choose_wise_ft_alpha,
    ema_decay_from_half_life,
    ema_weight,
    r3f_term,
    symmetric_kl,
    wise_ft_interpolate,
)
from transformers_fine_tuning.build import fine_tuning_callbacks
from transformers_fine_tuning.trainer.trainer_optimizer_init import CALLBACK_STATE_KEY

from tiny_models import FirstTokenTask, StopAtStep, tiny_model, training_args


def _unwrapped(optimizer):
    return getattr(optimizer, "optimizer", optimizer)


def _params(model) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


class Iterates(transformers.TrainerCallback):
    """The trainable parameters after every optimizer step (θ₁, θ₂, …), and at the end of training (before a
    weight average is put in)."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []
        self.at_end: dict[str, torch.Tensor] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps.append({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.at_end = _params(model)


def _trainer(tmp_path, callbacks, model=None, **args):
    return TrainerOptimizerInit(
        model=model or tiny_model("bert", num_layers=2),
        args=training_args(tmp_path, **args),
        train_dataset=FirstTokenTask(n=48),
        callbacks=callbacks,
    )


# ---- NoisyTune ------------------------------------------------------------------------------------------------


def test_noisytune_adds_uniform_noise_scaled_by_each_matrix_std():
    model = tiny_model("bert", num_layers=2)
    model.bert.encoder.layer[1].output.dense.weight.requires_grad_(False)  # frozen: left as it is
    before = _params(model)
    rng = torch.get_rng_state()
    clean = {}
    perturbed = apply_noisytune(model, 0.15, seed=3, exclude=["bert.pooler.dense.weight"], clean=clean)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is not drawn from

    expected = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and name.startswith("bert.") and name != "bert.pooler.dense.weight"
    ]
    assert perturbed == expected and set(clean) == set(expected)
    generator = torch.Generator().manual_seed(3)
    after = _params(model)
    for name in perturbed:
        std = before[name].std().item()
        noise = (torch.rand(before[name].shape, generator=generator) - 0.5) * (0.15 * std)
        assert torch.equal(after[name], before[name] + noise), name  # Eq. 1, draw for draw
        assert torch.equal(clean[name], before[name])
        if std > 0:
            assert (after[name] - before[name]).abs().max() <= 0.15 / 2 * std * (1 + 1e-6), name
    # on a large matrix the scaled noise is U(−λ/2, λ/2): standard deviation λ/√12 of std(W)
    word = "bert.embeddings.word_embeddings.weight"
    scaled = (after[word] - before[word]) / before[word].std()
    assert scaled.std().item() == pytest.approx(0.15 / math.sqrt(12), rel=0.05)
    assert scaled.mean().item() == pytest.approx(0.0, abs=0.005)
    for name in ("classifier.weight", "bert.pooler.dense.weight", "bert.encoder.layer.1.output.dense.weight"):
        assert torch.equal(after[name], before[name]), name  # the head, excluded, frozen
    ones = "bert.embeddings.LayerNorm.weight"  # std 0: a constant parameter stays as it is
    assert torch.equal(after[ones], before[ones]) and before[ones].std().item() == 0.0
    # the same seed gives the same noise
    again = tiny_model("bert", num_layers=2)
    again.bert.encoder.layer[1].output.dense.weight.requires_grad_(False)
    apply_noisytune(again, 0.15, seed=3, exclude=["bert.pooler.dense.weight"])
    assert all(torch.equal(p, after[n]) for n, p in again.named_parameters())


def test_noisytune_callback_keeps_l2sp_anchors_and_mixout_targets_at_the_clean_weights(tmp_path):
    """The noise moves the starting point; L2-SP's anchors and Mixout's targets stay the pretrained weights."""
    model = tiny_model("bert", num_layers=2)
    pretrained = _params(model)
    noisy = NoisyTuneCallback(0.15, seed=5)
    trainer = _trainer(
        tmp_path,
        [
            L2SPCallback(0.1),
            noisy,
            MixoutCallback(0.1),
            ReinitCallback(1),
            FreezeCallback(0, embeddings=True),
        ],
        model=model,
        max_steps=2,
    )
    start = _params(trainer.model)
    # re-initialised layer and pooler: no noise; frozen embeddings: unchanged; the rest of the backbone: noisy
    assert not any(
        n.startswith(("bert.encoder.layer.1.", "bert.pooler.", "bert.embeddings.")) for n in noisy.perturbed
    )
    assert "bert.encoder.layer.0.attention.self.query.weight" in noisy.perturbed
    for name in noisy.perturbed:
        if pretrained[name].std() > 0:
            assert not torch.equal(start[name], pretrained[name]), name
    assert all(torch.equal(start[n], pretrained[n]) for n in pretrained if n.startswith("bert.embeddings."))
    query = trainer.model.bert.encoder.layer[0].attention.self.query
    assert isinstance(query, MixoutLinear)
    assert torch.equal(query.mixout_target, pretrained["bert.encoder.layer.0.attention.self.query.weight"])

    trainer.train()
    optimizer = _unwrapped(trainer.optimizer)
    anchored = 0
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            if group["l2sp"] > 0:
                assert torch.equal(optimizer.state[param]["anchor"], pretrained[name]), name
                anchored += 1
    assert anchored >= len([n for n in noisy.perturbed if not n.startswith("bert.encoder.layer.1.")])
    assert trainer._plans[trainer.model].anchors == {}  # the clean copies went into the optimizer, no more
    assert torch.equal(query.mixout_target, pretrained["bert.encoder.layer.0.attention.self.query.weight"])


def test_noisytune_is_refused_under_adapters(tmp_path):
    pytest.importorskip("peft")
    from transformers_fine_tuning import apply_lora

    model = apply_lora(tiny_model("bert", num_layers=2), 4)
    with pytest.raises(ValueError, match=r"NoisyTuneCallback\(0.15\) cannot act on a model with adapters"):
        _trainer(tmp_path, [NoisyTuneCallback(0.15)], model=model)


# ---- weight averaging -------------------------------------------------------------------------------------------


def test_weight_average_swaps_exactly_and_averages_with_the_given_weights():
    layer = torch.nn.Linear(3, 2)
    average = WeightAverage(layer.named_parameters())
    iterates = []
    for step in range(1, 5):
        with torch.no_grad():
            layer.weight.add_(step)
        iterates.append(layer.weight.detach().clone())
        average.update(ema_weight(average.num_averaged + 1, 0.5))
    weights = [0.5 ** (4 - i) * 0.5 for i in range(1, 5)]
    expected = sum(w * t for w, t in zip(weights, iterates, strict=True)) / (1 - 0.5**4)
    trained = layer.weight.detach().clone()
    with average.swapped():
        torch.testing.assert_close(layer.weight.detach(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(layer.weight, trained)
    assert ema_decay_from_half_life(10) ** 10 == pytest.approx(0.5)


def test_ema_equals_the_hand_computed_average_and_never_leaks_into_training(tmp_path):
    runs = {}
    for name, extra in (("plain", []), ("ema", [EMACallback(0.7)])):
        iterates = Iterates()
        model = tiny_model("bert", num_layers=2)
        trainer = TrainerOptimizerInit(
            model=model,
            args=training_args(tmp_path / name, max_steps=6, eval_strategy="steps", eval_steps=3),
            train_dataset=FirstTokenTask(n=48),
            eval_dataset=FirstTokenTask(n=16, seed=1),
            callbacks=[iterates, *extra],
        )
        seen: list[torch.Tensor] = []

        def record(module, args, seen=seen):
            if not module.training:  # an evaluation batch (two per evaluation here)
                seen.append(module.weight.detach().clone())

        trainer.model.classifier.register_forward_pre_hook(record)
        trainer.train()
        runs[name] = (trainer, iterates, seen)

    plain, ema = runs["plain"][1], runs["ema"][1]
    # the raw iterates are those of training without the average: evaluating it swaps it back out exactly
    for a, b in zip(plain.steps, ema.steps, strict=True):
        assert all(torch.equal(a[n], b[n]) for n in a)

    def bias_corrected(steps, decay, name):
        n = len(steps)
        total = sum((1 - decay) * decay ** (n - i) * s[name] for i, s in enumerate(steps, 1))
        return total / (1 - decay**n)

    trainer, iterates, seen = runs["ema"]
    for name, param in trainer.model.named_parameters():  # the model ends with the average
        torch.testing.assert_close(param.detach(), bias_corrected(ema.steps, 0.7, name), rtol=1e-5, atol=1e-7)
    # the evaluation at step 3 ran on the average of θ₁ … θ₃, the one at step 6 on θ₁ … θ₆
    torch.testing.assert_close(
        seen[0], bias_corrected(ema.steps[:3], 0.7, "classifier.weight"), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(
        seen[-1], bias_corrected(ema.steps, 0.7, "classifier.weight"), rtol=1e-5, atol=1e-7
    )
    assert len(seen) == 4 and torch.equal(seen[0], seen[1])
    assert torch.equal(runs["plain"][2][0], plain.steps[2]["classifier.weight"])  # plain: the raw weights


@pytest.mark.parametrize(("start", "every", "averaged"), [(0.5, 1, [4, 5, 6]), (2, 2, [4, 6])])
def test_swa_is_the_uniform_average_from_the_given_step(tmp_path, start, every, averaged):
    iterates = Iterates()
    swa = SWACallback(start, every=every)
    trainer = _trainer(tmp_path, [iterates, swa], max_steps=6)
    trainer.train()
    assert swa.average.num_averaged == len(averaged)
    for name, param in trainer.model.named_parameters():
        expected = sum(iterates.steps[t - 1][name] for t in averaged) / len(averaged)
        torch.testing.assert_close(param.detach(), expected, rtol=1e-6, atol=1e-7)


def test_use_average_false_keeps_the_trained_weights(tmp_path):
    iterates = Iterates()
    swa = SWACallback(0.5, use_average=False)
    trainer = _trainer(tmp_path, [iterates, swa], max_steps=4)
    trainer.train()
    assert all(torch.equal(p, iterates.steps[-1][n]) for n, p in trainer.model.named_parameters())
    with swa.average.swapped():
        expected = (iterates.steps[2]["classifier.weight"] + iterates.steps[3]["classifier.weight"]) / 2
        torch.testing.assert_close(trainer.model.classifier.weight.detach(), expected)


def test_weight_average_with_l2sp_and_mixout_resumes_bit_for_bit(tmp_path):
    """The average is of the trainable parameters (not Mixout's target buffer, not L2-SP's anchors), lives in
    the checkpoint's optimizer.pt and continues exactly after resume_from_checkpoint."""

    def make(output_dir, average=None, *extra):
        return TrainerOptimizerInit(
            model_init=lambda: tiny_model("bert", num_layers=2),
            args=training_args(output_dir, max_steps=6, save_strategy="steps", save_steps=3),
            train_dataset=FirstTokenTask(n=48),
            callbacks=[L2SPCallback(0.1), MixoutCallback(0.2), *([average()] if average else []), *extra],
        )

    pretrained = _params(tiny_model("bert", num_layers=2))
    for kind, average in (("ema", lambda: EMACallback(half_life=0.5)), ("swa", lambda: SWACallback(0.3))):
        uninterrupted = make(tmp_path / kind / "a", average)
        uninterrupted.train()
        interrupted = make(tmp_path / kind / "b", average, StopAtStep(3))
        interrupted.train()
        checkpoint = tmp_path / kind / "b" / "out" / "checkpoint-3"
        saved = torch.load(checkpoint / "optimizer.pt", weights_only=True)[CALLBACK_STATE_KEY]
        (name,) = saved
        assert name == {"ema": "EMACallback", "swa": "SWACallback"}[kind]
        averages = saved[name]["averages"]
        assert set(averages) == {n for n, p in uninterrupted.model.named_parameters() if p.requires_grad}
        assert not any("mixout_target" in name for name in averages)  # buffers are not averaged
        resumed = make(tmp_path / kind / "b", average)
        resumed.train(resume_from_checkpoint=str(checkpoint))
        for (name, a), b in zip(
            uninterrupted.model.named_parameters(), resumed.model.parameters(), strict=True
        ):
            assert torch.equal(a, b), (kind, name)
        # L2-SP still pulls toward the pretrained weights; Mixout still mixes toward them
        optimizer = _unwrapped(resumed.optimizer)
        for group in optimizer.param_groups:
            for name, param in zip(group["param_names"], group["params"], strict=True):
                if group["l2sp"] > 0:
                    assert torch.equal(optimizer.state[param]["anchor"], pretrained[name]), name
        query = resumed.model.bert.encoder.layer[0].attention.self.query
        assert torch.equal(
            query.mixout_target, pretrained["bert.encoder.layer.0.attention.self.query.weight"]
        )
        assert not torch.equal(query.weight, query.mixout_target)

    # a checkpoint made without the average cannot continue one
    make(tmp_path / "c", None, StopAtStep(3)).train()
    with pytest.raises(RuntimeError, match=r"EMACallback\(0.9\): resuming at step 3, whose average holds 3"):
        make(tmp_path / "c", lambda: EMACallback(0.9)).train(
            resume_from_checkpoint=str(tmp_path / "c" / "out" / "checkpoint-3")
        )


def test_noisytune_and_r3f_resume_bit_for_bit(tmp_path):
    """Resumed from a checkpoint, a run with NoisyTune (drawn again at construction, then replaced by the
    checkpoint's weights), R3F (its noise replayed from the checkpoint's RNG state) and L2-SP (the clean anchors
    from optimizer.pt) ends with the uninterrupted run's weights, bit for bit."""

    def make(output_dir, *extra):
        return TrainerOptimizerInit(
            model_init=lambda: tiny_model("bert", num_layers=2),
            args=training_args(output_dir, max_steps=6, save_strategy="steps", save_steps=3),
            train_dataset=FirstTokenTask(n=48),
            callbacks=[
                L2SPCallback(0.1),
                NoisyTuneCallback(0.15, seed=1),
                R3FCallback(1.0, eps=1e-3),
                *extra,
            ],
        )

    uninterrupted = make(tmp_path / "a")
    uninterrupted.train()
    make(tmp_path / "b", StopAtStep(3)).train()
    resumed = make(tmp_path / "b")
    resumed.train(resume_from_checkpoint=str(tmp_path / "b" / "out" / "checkpoint-3"))
    for (name, a), b in zip(uninterrupted.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert any("loss_term/r3f" in entry for entry in resumed.state.log_history)


@pytest.mark.parametrize(
    ("callbacks", "args", "message"),
    [
        (
            [EMACallback(0.9), SWACallback(0.5)],
            {},
            r"EMACallback\(0.9\) and SWACallback\(0.5\): one weight average",
        ),
        ([SWACallback(0.75)], {"load_best_model_at_end": True}, "--load_best_model_at_end"),
    ],
)
def test_bad_weight_average_combinations_fail_at_construction(tmp_path, callbacks, args, message):
    if args.get("load_best_model_at_end"):
        args = {**args, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 2, "save_steps": 2}
    with pytest.raises(ValueError, match=message):
        TrainerOptimizerInit(
            model=tiny_model("bert", num_layers=2),
            args=training_args(tmp_path, **args),
            train_dataset=FirstTokenTask(n=16),
            eval_dataset=FirstTokenTask(n=8),
            callbacks=callbacks,
        )
    with pytest.raises(ValueError, match="one of the two"):
        EMACallback(0.9, half_life=10)


# ---- the loss-term protocol and R3F -----------------------------------------------------------------------------


class HeadNorm(LossTermCallback):
    """A loss term of a user's: c·‖W_head‖²."""

    term_name = "head_norm"

    def loss_term(self, model, inputs, outputs, loss):
        return 0.3 * model.classifier.weight.pow(2).sum()


def _batch(n=8):
    data = FirstTokenTask(n=n)
    return {"input_ids": data.input_ids, "labels": data.labels}


def _without_dropout():
    return tiny_model("bert", num_layers=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_a_loss_term_adds_its_gradient_keeps_the_task_loss_and_is_logged(tmp_path):
    term = HeadNorm()
    trainer = _trainer(tmp_path, [term], model=_without_dropout(), max_steps=2)
    model, inputs = trainer.model, _batch()
    model.train()
    loss = trainer.compute_loss(model, dict(inputs))
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    direct = model(**inputs).loss
    assert torch.equal(loss, direct)  # the value is the task loss
    (direct + 0.3 * model.classifier.weight.pow(2).sum()).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(ours[name], param.grad, rtol=1e-6, atol=1e-8, msg=name)
    model.zero_grad()
    model.eval()
    assert torch.equal(trainer.compute_loss(model, dict(inputs)), model(**inputs).loss)  # not in evaluation

    plain = _trainer(tmp_path / "plain", [], max_steps=2)
    plain.train()
    trainer = _trainer(tmp_path, [HeadNorm()], max_steps=2)  # seeds the RNG as plain's did
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    first = next(entry for entry in plain.state.log_history if "loss" in entry)
    assert logs[0]["loss"] == first["loss"]  # step 1, same weights: the logged loss is the task loss
    head = tiny_model("bert", num_layers=2).classifier.weight  # θ₀ of step 1's term
    assert logs[0]["loss_term/head_norm"] == pytest.approx(0.3 * head.pow(2).sum().item(), rel=1e-5)


def _kl_both_ways(logits, other):
    """KL(P ‖ Q) + KL(Q ‖ P) by the definition, in float64, averaged over the batch."""
    log_p, log_q = logits.double().log_softmax(-1), other.double().log_softmax(-1)
    return ((log_p.exp() * (log_p - log_q)).sum(-1) + (log_q.exp() * (log_q - log_p)).sum(-1)).mean()


def _fairseq_symmetric_kl(noised_logits, input_logits):
    """sentence_prediction_r3f._get_symm_kl of the authors' fairseq code."""
    return (
        F.kl_div(
            F.log_softmax(noised_logits, dim=-1, dtype=torch.float32),
            F.softmax(input_logits, dim=-1, dtype=torch.float32),
            None,
            None,
            "sum",
        )
        + F.kl_div(
            F.log_softmax(input_logits, dim=-1, dtype=torch.float32),
            F.softmax(noised_logits, dim=-1, dtype=torch.float32),
            None,
            None,
            "sum",
        )
    ) / noised_logits.size(0)


def test_symmetric_kl_of_each_problem_type():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    assert symmetric_kl(a, b).item() == pytest.approx(_kl_both_ways(a, b).item(), rel=1e-6)
    torch.testing.assert_close(symmetric_kl(a, b), _fairseq_symmetric_kl(b, a))
    x, y = a[:, :1], b[:, :1]  # regression: unit-variance Gaussians, KL_S = (x − y)²
    torch.testing.assert_close(symmetric_kl(x, y, problem_type="regression"), ((x - y) ** 2).mean())
    p, q = torch.sigmoid(a), torch.sigmoid(b)  # multi-label: Bernoulli per label
    kl = lambda u, v: u * (u / v).log() + (1 - u) * ((1 - u) / (1 - v)).log()  # noqa: E731
    torch.testing.assert_close(
        symmetric_kl(a, b, problem_type="multi_label_classification"), (kl(p, q) + kl(q, p)).sum(1).mean()
    )


@pytest.mark.parametrize("noise", ["normal", "uniform"])
def test_r3f_term_equals_a_direct_symmetric_kl_on_noisy_embeddings(tmp_path, noise):
    model = _without_dropout()
    r3f = R3FCallback(0.5, eps=0.05, noise=noise)
    trainer = _trainer(tmp_path, [r3f], model=model)
    inputs = _batch()
    model.train()
    torch.manual_seed(11)
    loss = trainer.compute_loss(model, dict(inputs))
    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    term = r3f.pop_term_mean()
    model.zero_grad()

    torch.manual_seed(11)  # the same draws, directly: noise on the word embeddings, detached
    clean = model(**inputs)
    embeddings = model.get_input_embeddings()(inputs["input_ids"])
    z = (
        torch.randn_like(embeddings) * 0.05
        if noise == "normal"
        else torch.empty_like(embeddings).uniform_(-0.05, 0.05)
    )
    noisy = model(inputs_embeds=embeddings.detach() + z).logits
    direct = _fairseq_symmetric_kl(noisy, clean.logits)
    exact = _kl_both_ways(clean.logits, noisy)
    assert term.item() == pytest.approx(0.5 * exact.item(), rel=1e-5) and exact.item() > 0
    # fairseq's float32 form sums two KLs whose first-order terms cancel: right to its rounding only
    assert direct.item() == pytest.approx(exact.item(), rel=3e-3)
    assert torch.equal(loss, clean.loss)
    (clean.loss + 0.5 * exact).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(ours[name], param.grad, rtol=1e-4, atol=1e-8, msg=name)
    # the noisy pass starts from detached embeddings: the word embeddings learn from the clean pass only
    model.zero_grad()
    r3f_term(model, inputs, clean.logits.detach(), eps=0.05, noise=noise).backward()
    assert (
        model.bert.embeddings.word_embeddings.weight.grad is None
        or not model.bert.embeddings.word_embeddings.weight.grad.any()
    )
    assert model.classifier.weight.grad.abs().sum() > 0


def test_r3f_term_scales_with_the_noise_variance(tmp_path):
    model = _without_dropout()
    model.train()
    inputs = _batch()
    with torch.no_grad():
        logits = model(**inputs).logits
        terms = []
        for eps in (1e-3, 2e-3):
            torch.manual_seed(0)
            terms.append(r3f_term(model, inputs, logits, eps=eps).item())
    assert terms[1] / terms[0] == pytest.approx(4.0, rel=0.05)  # KL_S ≈ ½·zᵀFz: quadratic in σ


def test_r3f_trains_and_logs_its_term(tmp_path):
    trainer = _trainer(tmp_path, [R3FCallback(1.0, eps=1e-5)], max_steps=3)
    trainer.train()
    terms = [entry["loss_term/r3f"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(terms) == 3 and all(0 <= t < 1e-3 and math.isfinite(t) for t in terms)


# ---- WiSE-FT ----------------------------------------------------------------------------------------------------


def test_wise_ft_interpolation_is_exact():
    model = tiny_model("bert", num_layers=2)
    fine_tuned = _params(model)
    theta0 = {n: t + torch.randn_like(t) for n, t in fine_tuned.items() if n.startswith("bert.")}
    for alpha in (0.0, 0.3, 1.0):
        names = wise_ft_interpolate(model, theta0, alpha, fine_tuned=fine_tuned)
        assert names == list(theta0)
        after = _params(model)
        for name in theta0:
            if alpha in (0.0, 1.0):  # exactly the pretrained, exactly the fine-tuned
                assert torch.equal(after[name], theta0[name] if alpha == 0 else fine_tuned[name]), name
            else:
                expected = (1 - alpha) * theta0[name] + alpha * fine_tuned[name]
                torch.testing.assert_close(after[name], expected, rtol=1e-6, atol=1e-7)
        assert torch.equal(after["classifier.weight"], fine_tuned["classifier.weight"])  # no θ₀: untouched


def test_choose_wise_ft_alpha_keeps_the_best_and_breaks_ties_toward_one():
    layer = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(2.0)
    scores = iter([0.1, 0.7, 0.7])
    alpha, table = choose_wise_ft_alpha(
        layer, {"weight": torch.zeros(1, 1)}, [0.0, 0.5, 1.0], lambda: next(scores)
    )
    assert alpha == 1.0 and table == {0.0: 0.1, 0.5: 0.7, 1.0: 0.7}
    assert layer.weight.item() == 2.0
    values = {0.0: 0.0, 0.25: 0.9, 1.0: 0.2}
    alpha, _ = choose_wise_ft_alpha(
        layer,
        {"weight": torch.zeros(1, 1)},
        list(values),
        lambda: values[round(layer.weight.item() / 2.0, 2)],
    )
    assert alpha == 0.25 and layer.weight.item() == pytest.approx(0.5)


def test_wise_ft_from_the_l2sp_anchors_after_an_ema(tmp_path):
    """θ₀ from AdamWL2SP's anchors; θ the fine-tuned — here the EMA's average, put in at the end of training."""
    model = tiny_model("bert", num_layers=2)
    pretrained = _params(model)
    iterates, wise, ema = Iterates(), WiSEFTCallback(0.4), EMACallback(0.5)
    trainer = _trainer(tmp_path, [L2SPCallback(0.1), iterates, ema, wise], model=model, max_steps=3)
    trainer.train()
    assert wise.source == "anchors" and wise.alpha_chosen == 0.4
    ema = ema.average
    averaged = dict(zip(ema.names, ema.averages, strict=True))
    for name, param in trainer.model.named_parameters():
        if name.startswith("bert."):
            expected = torch.lerp(pretrained[name], averaged[name], 0.4)
            assert torch.equal(param.detach(), expected), name
        else:
            assert torch.equal(param.detach(), averaged[name]), name  # the head keeps its (averaged) values
    assert not torch.equal(iterates.at_end["classifier.weight"], averaged["classifier.weight"])


def test_wise_ft_from_the_checkpoint_and_from_a_copy_are_the_clean_pretrained_weights(
    tmp_path, tiny_bert_dir
):
    def trained(*callbacks):
        model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
        trainer = TrainerOptimizerInit(
            model=model,
            args=training_args(tmp_path, max_steps=2),
            train_dataset=FirstTokenTask(n=16),
            callbacks=list(callbacks),
        )
        trainer.train()
        return trainer

    checkpoint = transformers.AutoModel.from_pretrained(tiny_bert_dir)
    clean = {f"bert.{n}": p.detach() for n, p in checkpoint.named_parameters()}
    for wise in (WiSEFTCallback(0.0, pretrained=tiny_bert_dir), WiSEFTCallback(0.0)):
        trainer = trained(NoisyTuneCallback(0.5, seed=1), wise)
        assert wise.source == ("checkpoint" if wise.pretrained else "copy")
        for name, param in trainer.model.named_parameters():
            if name in clean:  # α = 0: the pretrained backbone, without NoisyTune's noise
                assert torch.equal(param.detach(), clean[name]), name


def test_wise_ft_chooses_alpha_on_held_out_data(tmp_path):
    held_out, reported = FirstTokenTask(n=24, seed=2), FirstTokenTask(n=16, seed=1)

    def accuracy(prediction):
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    model = tiny_model("bert", num_layers=2)
    pretrained = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("bert.")}
    wise = WiSEFTCallback(alphas=[0.0, 0.5, 1.0], held_out=held_out, metric="accuracy")
    iterates = Iterates()
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, max_steps=8, learning_rate=3e-3),
        train_dataset=FirstTokenTask(n=48),
        eval_dataset=reported,
        compute_metrics=accuracy,
        callbacks=[iterates, wise],
    )
    trainer.train()
    # every α's score is the held-out accuracy of that interpolation, computed here independently
    check = tiny_model("bert", num_layers=2)
    check.eval()
    for alpha, score in wise.scores.items():
        with torch.no_grad():
            for name, param in check.named_parameters():
                param.copy_(
                    torch.lerp(pretrained[name], iterates.at_end[name], alpha)
                    if name in pretrained
                    else iterates.at_end[name]
                )
            logits = check(input_ids=held_out.input_ids).logits
        assert score == pytest.approx((logits.argmax(-1) == held_out.labels).float().mean().item()), alpha
    assert list(wise.scores) == [0.0, 0.5, 1.0]
    best = max(wise.scores.values())
    assert wise.alpha_chosen == max(a for a, s in wise.scores.items() if s == best)
    final = _params(trainer.model)
    for name in pretrained:
        assert torch.equal(
            final[name], torch.lerp(pretrained[name], iterates.at_end[name], wise.alpha_chosen)
        )

    with pytest.raises(ValueError, match="held_out is an evaluation split the Trainer reports"):
        TrainerOptimizerInit(
            model=tiny_model("bert", num_layers=2),
            args=training_args(tmp_path),
            train_dataset=FirstTokenTask(n=16),
            eval_dataset={"validation": reported},
            callbacks=[WiSEFTCallback(alphas=[0.5, 1.0], held_out=reported, metric="accuracy")],
        )
    with pytest.raises(ValueError, match=r"held_out= .* and metric="):
        WiSEFTCallback(alphas=[0.5, 1.0])


def test_stabilizers_work_with_a_ready_made_optimizer_surgery_does_not(tmp_path):
    model = tiny_model("bert", num_layers=2)
    ready = (torch.optim.AdamW(model.parameters(), lr=1e-3), None)
    TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=16),
        optimizers=ready,
        callbacks=[EMACallback(0.9), R3FCallback(), WiSEFTCallback(0.5)],
    ).train()
    with pytest.raises(ValueError, match="ready-made"):
        TrainerOptimizerInit(
            model=model,
            args=training_args(tmp_path),
            optimizers=ready,
            callbacks=[NoisyTuneCallback()],
        )


# ---- the fine-tune job's flags ----------------------------------------------------------------------------------


def _parse(*flags):
    from transformers_fine_tuning.arguments import parse_fine_tune_args

    return parse_fine_tune_args(["--output_dir", "unused", "--use_cpu", "true", *flags])


def test_flags_build_the_callbacks_named_by_the_flags():
    args = _parse(
        *("--noisytune", "0.15", "--swa_start", "0.75", "--swa_every", "2", "--r3f_lambda", "0.5"),
        *("--r3f_noise", "uniform", "--wise_ft_alphas", "0,0.5,1", "--wise_ft_held_out", "0.2"),
    )
    callbacks = {
        type(cb).__name__: cb
        for cb in fine_tuning_callbacks(args.fine_tuning, seed=4, held_out=[1], metric="f1")
    }
    noisy, swa, r3f, wise = (
        callbacks[name] for name in ("NoisyTuneCallback", "SWACallback", "R3FCallback", "WiSEFTCallback")
    )
    assert (noisy.noise_lambda, noisy.seed, noisy.describe()) == (0.15, 4, "--noisytune 0.15")
    assert (swa.start, swa.every, swa.use_average) == (0.75, 2, True)
    assert (r3f.strength, r3f.eps, r3f.noise) == (0.5, 1e-5, "uniform")
    assert (wise.alphas, wise.metric, wise.describe()) == ([0.0, 0.5, 1.0], "f1", "--wise_ft_alphas 0,0.5,1")
    assert args.fine_tuning.wise_ft_held_out_share == 0.2
    ema = fine_tuning_callbacks(
        _parse("--ema_half_life", "0.1", "--weight_average_eval", "false").fine_tuning
    )
    assert (ema[0].half_life, ema[0].use_average) == (0.1, False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ema_decay", "0.9", "--swa_start", "0.5"], "--ema_decay and --swa_start: one weight average"),
        (["--ema_decay", "1.0"], r"--ema_decay 1.0: must be in \(0, 1\)"),
        (["--swa_every", "3"], "--swa_every applies with --swa_start only"),
        (["--r3f_eps", "0.001"], "--r3f_eps applies with --r3f_lambda only"),
        (["--wise_ft_alpha", "0.5", "--wise_ft_alphas", "0,1"], "not both"),
        (["--wise_ft_alphas", "0,2"], "--wise_ft_alphas 0,2: must be comma-separated numbers in"),
        (["--wise_ft_held_out", "0.1"], "--wise_ft_held_out applies with --wise_ft_alphas only"),
        (["--noisytune", "-1"], "--noisytune -1.0: must be >= 0"),
    ],
)
def test_bad_stabilizer_flags_fail_when_parsed(flags, message):
    with pytest.raises(ValueError, match=message):
        _parse(*flags)


def test_the_job_holds_out_training_data_for_wise_ft_and_records_alpha(tmp_path, tiny_bert_dir, glue_dir):
    from transformers_fine_tuning.fine_tune import WISE_FT_HELD_OUT, prepare, run

    args = _parse(
        *("--model_name_or_path", tiny_bert_dir, "--task_name", "rte", "--data_dir", str(glue_dir / "RTE")),
        *(
            "--max_train_samples",
            "40",
            "--max_eval_samples",
            "16",
            "--max_seq_length",
            "32",
            "--max_steps",
            "4",
        ),
        *(
            "--per_device_train_batch_size",
            "8",
            "--output_dir",
            str(tmp_path / "run"),
            "--disable_tqdm",
            "true",
        ),
        *(
            "--optim",
            "adamw_l2sp",
            "--l2sp_pretrained",
            "0.1",
            "--noisytune",
            "0.15",
            "--ema_half_life",
            "0.5",
        ),
        *(
            "--r3f_lambda",
            "1",
            "--wise_ft_alphas",
            "0,0.5,1",
            "--wise_ft_held_out",
            "0.25",
            "--logging_steps",
            "1",
        ),
    )
    setup = prepare(args)
    held_out = setup.raw[WISE_FT_HELD_OUT]
    assert len(held_out) == 10 and len(setup.raw["train"]) == 30
    assert not set(held_out["idx"]) & set(setup.raw["train"]["idx"])  # never trained on
    trainer, results = run(args, setup)
    wise = results.wise_ft
    assert wise.alphas == [0.0, 0.5, 1.0] and len(wise.scores) == 3 and wise.alpha in wise.alphas
    assert (wise.metric, wise.held_out_examples, wise.source) == ("accuracy", 10, "anchors")
    assert wise.scores[wise.alphas.index(wise.alpha)] == max(wise.scores)
    assert results.num_examples == {"train": 30, "validation": 16, WISE_FT_HELD_OUT: 10}
    # the final metrics are the interpolated model's: an evaluation after WiSE-FT, at the last step
    assert results.metrics["validation"]["accuracy"] == trainer.evaluate()["eval_validation_accuracy"]
    assert all("loss_term/r3f" in entry for entry in trainer.state.log_history if "loss" in entry)


@pytest.mark.parametrize(
    ("recipe", "callback", "cited"),
    [
        ("noisytune", "NoisyTuneCallback", "Eq. 1"),
        ("ema", "EMACallback", "Sec. 7.2"),
        ("swa", "SWACallback", "Alg. 1"),
        ("r3f", "R3FCallback", "Eq. 3"),
        ("wise-ft", "WiSEFTCallback", "Eq. 1"),
        ("lp-ft", "LPFTCallback", "Kumar"),
        ("gradual-unfreezing", "GradualUnfreezingCallback", "Sec. 3.3"),
        ("spd", "L2SPCallback", "Alg. 1"),
    ],
)
def test_each_recipe_cites_its_paper_and_builds_its_callback(recipe, callback, cited):
    from transformers_fine_tuning.recipes import load_recipe

    assert cited in load_recipe(recipe).source
    args = _parse("--recipe", recipe)
    built = fine_tuning_callbacks(args.fine_tuning, seed=1, held_out=[0], metric="accuracy")
    assert [type(cb).__name__ for cb in built] == [callback]
    assert args.training.adamw_l2sp and args.fine_tuning.bias_correction
