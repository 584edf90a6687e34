"""Model surgery: re-init touches exactly the top layers and the pooler, freezing keeps weights bitwise,
Mixout mixes toward the pretrained weights."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from transformers_fine_tuning import (
    AdamWL2SP,
    MixoutLinear,
    apply_mixout,
    freeze_bottom_layers,
    param_groups,
    reinit_top_layers,
)

from tiny_models import tiny_model


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)


def test_reinit_changes_exactly_top_layers_and_pooler_of_pretrained_model(minilm_path):
    model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    before = _snapshot(model)
    torch.manual_seed(0)
    names = reinit_top_layers(model, 2)
    expected = {
        n for n in before if n.startswith(("bert.encoder.layer.4.", "bert.encoder.layer.5.", "bert.pooler."))
    }
    assert set(names) == expected
    for name, param in model.named_parameters():
        if name in expected:
            if name.endswith("LayerNorm.weight"):
                assert torch.all(param == 1.0), name
            elif name.endswith("bias"):
                assert torch.all(param == 0.0), name
            else:
                assert not torch.equal(param, before[name]), name
                assert param.std().item() == pytest.approx(model.config.initializer_range, rel=0.1), name
        else:
            assert torch.equal(param, before[name]), name


def test_reinit_follows_the_seed_and_keeps_parameter_identity():
    draws = []
    for _ in range(2):
        model = tiny_model("bert", num_layers=3)
        params = list(model.parameters())
        torch.manual_seed(123)
        reinit_top_layers(model, 1)
        assert all(a is b for a, b in zip(params, model.parameters(), strict=True))
        draws.append(model.bert.encoder.layer[2].output.dense.weight.detach().clone())
    assert torch.equal(*draws)


def test_reinit_without_pooler_and_zero_layers():
    model = tiny_model("bert", num_layers=3)
    before = _snapshot(model)
    assert reinit_top_layers(model, 0, reinit_pooler=False) == []
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    names = reinit_top_layers(model, 1, reinit_pooler=False)
    assert names and all(n.startswith("bert.encoder.layer.2.") for n in names)


@pytest.mark.parametrize("model_type", ["roberta", "electra", "distilbert", "deberta-v2", "albert"])
def test_reinit_other_architectures(model_type):
    model = tiny_model(model_type, num_layers=3)
    before = _snapshot(model)
    torch.manual_seed(1)
    names = set(reinit_top_layers(model, 1))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= names
    if (
        model_type == "albert"
    ):  # one shared group: re-init of 1 group is the whole shared encoder (and pooler)
        assert any("albert_layer_groups.0." in n for n in names) and "albert.pooler.weight" in names
    else:
        assert not any(".layer.0." in n or ".layer.1." in n for n in names)


def test_reinit_and_freeze_reject_too_many_layers():
    model = tiny_model("bert", num_layers=3)
    with pytest.raises(ValueError, match="has 3 layers"):
        reinit_top_layers(model, 4)
    with pytest.raises(ValueError, match="has 3 layers"):
        freeze_bottom_layers(model, -1)


def test_frozen_parameters_are_bitwise_unchanged_after_training_steps():
    model = tiny_model("bert", num_layers=3)
    frozen = freeze_bottom_layers(model, 2)
    assert {n.split(".")[1] for n in frozen} == {"embeddings", "encoder"}
    assert not any(n.startswith("bert.encoder.layer.2.") for n in frozen)
    before = _snapshot(model)
    optimizer = AdamWL2SP(param_groups(model, lr=1e-2, weight_decay=0.1, l2sp=0.1))
    inputs = {"input_ids": torch.randint(5, 99, (4, 8)), "labels": torch.tensor([0, 1, 0, 1])}
    for _ in range(3):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
    for name, param in model.named_parameters():
        if name in frozen:
            assert torch.equal(param, before[name]), name
            assert not param.requires_grad
    assert not torch.equal(
        model.bert.encoder.layer[2].output.dense.weight, before["bert.encoder.layer.2.output.dense.weight"]
    )


def test_freeze_layers_but_not_embeddings():
    model = tiny_model("distilbert", num_layers=3)
    frozen = freeze_bottom_layers(model, 1, embeddings=False)
    assert frozen and all(n.startswith("distilbert.transformer.layer.0.") for n in frozen)


def test_mixout_replaces_backbone_linears_and_keeps_parameters():
    model = tiny_model("bert", num_layers=2)
    params = dict(model.named_parameters())
    plain_keys = list(model.state_dict())
    replaced = apply_mixout(model, 0.1)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert set(replaced) == {n for n in linears if n != "classifier"}
    assert type(model.classifier) is nn.Linear
    assert all(isinstance(model.get_submodule(n), MixoutLinear) for n in replaced)
    assert all(a is params[n] for n, a in model.named_parameters())
    # the target is not saved: the state dict is the plain model's (it loads without Mixout, no unexpected keys)
    assert list(model.state_dict()) == plain_keys
    assert isinstance(model.bert.encoder.layer[0].output.dense.mixout_target, torch.Tensor)


def test_mixout_eval_is_plain_linear_and_training_mixes_toward_target():
    torch.manual_seed(0)
    linear = nn.Linear(200, 100)
    target = torch.zeros_like(linear.weight)
    mix = MixoutLinear(linear, p=0.3, target=target)
    x = torch.randn(1, 200)
    mix.eval()
    torch.testing.assert_close(mix(x), linear(x))
    mix.train()
    # with target 0 the mixed weight is dropout(w, p): each element is 0 or w / (1 − p)
    eye = torch.eye(200)
    weight_seen = (mix(eye) - mix.bias).T
    kept = weight_seen != 0
    assert 0.6 < kept.float().mean().item() < 0.8
    torch.testing.assert_close(weight_seen[kept], (linear.weight / 0.7)[kept])


def test_mixout_expectation_is_the_current_weight():
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    target = torch.randn(3, 4)
    mix = MixoutLinear(linear, p=0.5, target=target).train()
    draws = torch.stack([(mix(torch.eye(4)) - mix.bias).T for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0), linear.weight.detach(), atol=0.08, rtol=0)
    # every element is either the target's or the rescaled weight's value
    for draw in draws[:20]:
        keep = (draw - (target + (linear.weight - target) / 0.5)).abs() < 1e-5
        assert torch.all(keep | ((draw - target).abs() < 1e-5))


def test_mixout_skips_excluded_layers_and_rejects_bad_p():
    model = tiny_model("bert", num_layers=2)
    torch.manual_seed(0)
    novel = reinit_top_layers(model, 1)
    replaced = apply_mixout(model, 0.2, exclude=novel)
    assert not any(n.startswith(("bert.encoder.layer.1.", "bert.pooler")) for n in replaced)
    assert any(n.startswith("bert.encoder.layer.0.") for n in replaced)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        apply_mixout(model, 1.0)
