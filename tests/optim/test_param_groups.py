"""param_groups: decay split, pretrained/novel split, LLRD learning rates, frozen parameters, architectures."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

from transformers_fine_tuning import LayerMap, model_layout, param_groups, register_layer_map
from transformers_fine_tuning.architectures import LAYER_MAPS

from tiny_models import ARCHITECTURES, tiny_model


def _lr_of(groups):
    return {name: group["lr"] for group in groups for name in group["param_names"]}


def test_llrd_learning_rates_bert_12_layers():
    model = tiny_model("bert", num_layers=12)
    groups = param_groups(model, lr=1.0, layer_decay=0.5)
    lr = _lr_of(groups)
    assert lr["classifier.weight"] == 1.0
    assert lr["bert.pooler.dense.weight"] == 1.0
    for index in range(12):
        # top layer (11) gets ξ, the bottom layer (0) ξ^12
        assert lr[f"bert.encoder.layer.{index}.attention.self.query.weight"] == 0.5 ** (12 - index)
    assert lr["bert.embeddings.word_embeddings.weight"] == 0.5**13
    assert lr["bert.embeddings.LayerNorm.weight"] == 0.5**13
    names = [g["name"] for g in groups]
    assert names[:2] == ["embeddings_pretrained_no_decay", "embeddings_pretrained_decay"]
    assert "layer_11_pretrained_decay" in names and "head_novel_decay" in names
    # groups come in depth order: learning rates never decrease down the list
    assert [g["lr"] for g in groups] == sorted(g["lr"] for g in groups)


def test_llrd_albert_shared_layer_is_one_depth():
    model = tiny_model("albert", num_layers=12)
    assert model_layout(model).num_layers == 1  # one layer group, shared by 12 layers
    lr = _lr_of(param_groups(model, lr=2e-5, layer_decay=0.9))
    assert lr["classifier.weight"] == pytest.approx(2e-5)
    assert lr["albert.pooler.weight"] == pytest.approx(2e-5)
    assert lr["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"] == pytest.approx(2e-5 * 0.9)
    assert lr["albert.embeddings.word_embeddings.weight"] == pytest.approx(2e-5 * 0.9**2)
    assert lr["albert.encoder.embedding_hidden_mapping_in.weight"] == pytest.approx(2e-5 * 0.9**2)


def test_llrd_albert_with_two_layer_groups():
    model = tiny_model("albert", num_layers=4, num_hidden_groups=2)
    lr = _lr_of(param_groups(model, lr=1.0, layer_decay=0.5))
    assert lr["albert.encoder.albert_layer_groups.1.albert_layers.0.ffn.weight"] == 0.5
    assert lr["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"] == 0.25
    assert lr["albert.embeddings.word_embeddings.weight"] == 0.125


def test_decay_and_novel_split():
    model = tiny_model("bert", num_layers=2)
    groups = {
        g["name"]: g for g in param_groups(model, lr=1e-3, weight_decay=0.0, novel_weight_decay=0.1, l2sp=0.5)
    }
    assert set(groups) == {"pretrained_no_decay", "pretrained_decay", "novel_no_decay", "novel_decay"}
    assert groups["novel_decay"]["param_names"] == ["classifier.weight"]
    assert groups["novel_no_decay"]["param_names"] == ["classifier.bias"]
    assert groups["novel_decay"]["weight_decay"] == 0.1 and groups["novel_decay"]["l2sp"] == 0.0
    assert groups["pretrained_decay"]["weight_decay"] == 0.0 and groups["pretrained_decay"]["l2sp"] == 0.5
    assert (
        groups["pretrained_no_decay"]["l2sp"] == 0.5 and groups["pretrained_no_decay"]["weight_decay"] == 0.0
    )
    no_decay = groups["pretrained_no_decay"]["param_names"]
    assert all(n.endswith("bias") or "LayerNorm" in n for n in no_decay)
    assert "bert.pooler.dense.bias" in no_decay and "bert.embeddings.LayerNorm.weight" in no_decay
    decay = groups["pretrained_decay"]["param_names"]
    assert "bert.embeddings.word_embeddings.weight" in decay and "bert.pooler.dense.weight" in decay
    total = sum(len(g["params"]) for g in groups.values())
    assert total == len(list(model.parameters()))


def test_same_split_as_trainer_decay_rule():
    model = tiny_model("bert", num_layers=2)
    trainer_decay = set(transformers.Trainer.get_decay_parameter_names(None, model))
    groups = param_groups(model, lr=1e-3, weight_decay=0.01)
    ours = {n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]}
    assert ours == trainer_decay


def test_novel_names_and_frozen_parameters():
    model = tiny_model("bert", num_layers=2)
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    reinit = [n for n, _ in model.named_parameters() if n.startswith("bert.encoder.layer.1.")]
    groups = param_groups(model, lr=1e-3, l2sp=0.1, novel=reinit)
    names = [n for g in groups for n in g["param_names"]]
    assert not any(n.startswith("bert.embeddings.") for n in names)
    novel = {n for g in groups if g["name"].startswith("novel") for n in g["param_names"]}
    assert novel == set(reinit) | {"classifier.weight", "classifier.bias"}
    assert all(g["l2sp"] == 0.0 for g in groups if g["name"].startswith("novel"))


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_every_architecture_has_a_layout_and_a_head(model_type):
    model = tiny_model(model_type, num_layers=3)
    layout = model_layout(model)
    groups = param_groups(model, lr=1.0, layer_decay=0.5, l2sp=0.1)
    lr = _lr_of(groups)
    depths = {layout.depth(n) for n in lr}
    expected_units = 1 if model_type == "albert" else 3
    assert layout.num_layers == expected_units
    assert depths == set(range(expected_units + 2))
    head = {n for g in groups if "novel" in g["name"] for n in g["param_names"]}
    assert head and all(not n.startswith(model.base_model_prefix + ".") for n in head)
    assert all(lr[n] == 1.0 for n in head)
    # every trainable parameter is in a group (RoFormer's sinusoidal position table is a frozen parameter)
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_heads_and_poolers_per_architecture():
    novel = {}
    for model_type in ARCHITECTURES:
        groups = param_groups(tiny_model(model_type, num_layers=2), lr=1.0, l2sp=0.1)
        novel[model_type] = sorted(
            n for g in groups if g["name"].startswith("novel") for n in g["param_names"]
        )
    assert novel["roberta"] == sorted(["classifier.dense.weight", "classifier.dense.bias",
                                       "classifier.out_proj.weight", "classifier.out_proj.bias"])  # fmt: skip
    assert novel["distilbert"] == sorted(["pre_classifier.weight", "pre_classifier.bias", "classifier.weight",
                                          "classifier.bias"])  # fmt: skip
    assert novel["deberta-v2"] == sorted(["pooler.dense.weight", "pooler.dense.bias", "classifier.weight",
                                          "classifier.bias"])  # fmt: skip
    deberta = model_layout(tiny_model("deberta-v2", num_layers=2))
    assert deberta.depth("deberta.encoder.rel_embeddings.weight") == 0
    electra = model_layout(tiny_model("electra", num_layers=2))
    assert electra.depth("electra.embeddings_project.weight") == 0


def test_unknown_architecture_error_lists_supported_and_custom_map():
    model = transformers.AutoModelForSequenceClassification.from_config(
        transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=99, pad_token_id=0)
    )
    with pytest.raises(
        ValueError, match=r"albert, bert, .*deberta-v2, distilbert, electra, .*roberta.*layer_map=LayerMap"
    ):
        model_layout(model, strict=True)
    # outside the table, the layout is discovered: GPT-2's blocks, its final LayerNorm at the top depth
    lr = _lr_of(param_groups(model, lr=1.0, layer_decay=0.5))
    assert lr["transformer.h.1.attn.c_attn.weight"] == 0.5 and lr["transformer.wte.weight"] == 0.125
    assert lr["transformer.ln_f.weight"] == 0.5 and lr["score.weight"] == 1.0
    # a custom layer map overrides discovery
    groups = param_groups(model, lr=1.0, layer_decay=0.5, layer_map=LayerMap(layers="h"))
    lr = _lr_of(groups)
    assert lr["transformer.h.1.attn.c_attn.weight"] == 0.5 and lr["transformer.wte.weight"] == 0.125
    assert lr["transformer.ln_f.weight"] == 0.125 and lr["score.weight"] == 1.0
    # without architecture-dependent options, a model whose layout cannot be found works
    plain = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    assert [g["name"] for g in param_groups(plain, lr=1e-3, weight_decay=0.01)] == ["no_decay", "decay"]
    with pytest.raises(ValueError, match=r"no ModuleList of repeated blocks.*layer_map=LayerMap"):
        param_groups(plain, lr=1e-3, layer_decay=0.9)


def test_register_layer_map(monkeypatch):
    monkeypatch.setitem(LAYER_MAPS, "gpt2", LayerMap(layers="h"))
    model = transformers.AutoModelForSequenceClassification.from_config(
        transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=99, pad_token_id=0)
    )
    assert model_layout(model).num_layers == 2
    register_layer_map("gpt2", LayerMap(layers="h", pooler=None))
    assert LAYER_MAPS["gpt2"] == LayerMap(layers="h")


def test_groups_build_adamwl2sp_and_torch_adamw():
    from transformers_fine_tuning import AdamWL2SP

    model = tiny_model("bert", num_layers=2)
    groups = param_groups(model, lr=1e-3, l2sp=0.1, layer_decay=0.9)
    optimizer = AdamWL2SP(groups)
    anchored = {id(p) for p in optimizer.state}
    pretrained = [p for g in groups if "pretrained" in g["name"] for p in g["params"]]
    assert anchored == {id(p) for p in pretrained}
    torch.optim.AdamW(param_groups(model, lr=1e-3, weight_decay=0.01))
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(model, lr=1e-3, layer_decay=1.5)
