"""The layer table and its discovery: each family's stack, pooler, head and top-of-stack modules, through LLRD,
re-init, freezing, L2-SP and the gradient norms; discovery finds the table's layout for every family; its
errors (ambiguous stacks, encoder–decoder models, strict mode) name the candidates and the fix."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import transformers
from torch import nn

from transformers_fine_tuning import (
    LAYER_MAPS,
    AdamWL2SP,
    LayerMap,
    discover_layer_map,
    freeze_bottom_layers,
    grad_norms_by_depth,
    model_layout,
    param_groups,
    reinit_top_layers,
)

from tiny_models import ARCHITECTURES, tiny_config, tiny_model, train_steps

ROBERTA_HEAD = {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
                "classifier.out_proj.bias"}  # fmt: skip
BERT_HEAD = {"classifier.weight", "classifier.bias"}

# Written out by hand, independently of the table: per family (tiny task model, 2 layers) the layer stack, the
# pretrained pooler, the modules above the stack (top layer's depth), the new head, and depth-0 oddities.
FAMILIES = {
    "xlm-roberta": {"stack": "roberta.encoder.layer", "head": ROBERTA_HEAD},
    "camembert": {"stack": "roberta.encoder.layer", "head": ROBERTA_HEAD},
    "data2vec-text": {"stack": "data2vec_text.encoder.layer", "head": ROBERTA_HEAD},
    "xlm-roberta-xl": {"stack": "roberta.encoder.layer", "after": "roberta.encoder.LayerNorm.", "head": ROBERTA_HEAD},
    "mpnet": {"stack": "mpnet.encoder.layer", "head": ROBERTA_HEAD, "bottom": "mpnet.encoder.relative_attention_bias.weight"},
    "roformer": {"stack": "roformer.encoder.layer", "head": ROBERTA_HEAD, "bottom": "roformer.embeddings_project.weight"},
    "deberta": {"stack": "deberta.encoder.layer", "head": {"pooler.dense.weight", "pooler.dense.bias", *BERT_HEAD},
                "bottom": "deberta.encoder.rel_embeddings.weight"},
    "ernie": {"stack": "ernie.encoder.layer", "pooler": "ernie.pooler.", "head": BERT_HEAD},
    "megatron-bert": {"stack": "bert.encoder.layer", "pooler": "bert.pooler.", "after": "bert.encoder.ln.", "head": BERT_HEAD},
    "modernbert": {"stack": "model.layers", "pooler": "head.", "after": "model.final_norm.", "head": BERT_HEAD},
}  # fmt: skip
L = 2  # layers of the tiny models
XI = 0.5


def _expected_depth(family: dict, name: str) -> int:
    if name.startswith(family["stack"] + "."):
        return int(name[len(family["stack"]) + 1 :].split(".")[0]) + 1
    if "after" in family and name.startswith(family["after"]):
        return L
    if name in family["head"] or ("pooler" in family and name.startswith(family["pooler"])):
        return L + 1
    return 0


def _trainable(model):
    return {name for name, param in model.named_parameters() if param.requires_grad}


def _snapshot(model):
    return {name: param.detach().clone() for name, param in model.named_parameters()}


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_llrd_head_pooler_and_l2sp(model_type):
    family, model = FAMILIES[model_type], tiny_model(model_type, num_layers=L)
    layout = model_layout(model)
    assert layout.num_layers == L
    groups = param_groups(model, lr=1.0, layer_decay=XI, l2sp=0.1, weight_decay=0.01)
    lr = {name: group["lr"] for group in groups for name in group["param_names"]}
    assert set(lr) == _trainable(model)
    for name, value in lr.items():  # η·ξ^(L+1−d) at every depth d
        assert value == XI ** (L + 1 - _expected_depth(family, name)), name
    novel = {name for group in groups if "novel" in group["name"] for name in group["param_names"]}
    assert novel == family["head"]  # the head, exactly; the pooler is pretrained
    assert all(group["l2sp"] == (0.0 if "novel" in group["name"] else 0.1) for group in groups)
    if "pooler" in family:
        assert layout.pooler_prefix == family["pooler"]
        assert any(layout.is_pooler(name) and not layout.is_head(name) for name in lr)
    else:
        assert layout.pooler_prefix is None
    if "after" in family:  # ModernBERT's final_norm: the top layer's rate, not the embeddings'
        assert {lr[name] for name in lr if name.startswith(family["after"])} == {XI}
    if "bottom" in family:
        assert lr[family["bottom"]] == XI ** (L + 1)
    # L2-SP anchors: exactly the pretrained parameters
    optimizer = AdamWL2SP(groups)
    anchored = {name for group in groups if group["l2sp"] > 0 for name in group["param_names"]}
    assert anchored == set(lr) - family["head"] and len(optimizer.state) == len(anchored)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_reinit_changes_exactly_the_top_layer(model_type):
    family, model = FAMILIES[model_type], tiny_model(model_type, num_layers=L)
    before = _snapshot(model)
    torch.manual_seed(7)
    names = set(reinit_top_layers(model, 1))
    expected = {
        name
        for name in before
        if name.startswith(f"{family['stack']}.{L - 1}.")
        or name.startswith(tuple(family[key] for key in ("after", "pooler") if key in family))
    }
    assert names == expected
    for name, param in model.named_parameters():
        if name not in expected:
            assert torch.equal(param, before[name]), name
    weights = [name for name in expected if name.endswith("weight") and before[name].dim() == 2]
    assert weights and all(not torch.equal(model.get_parameter(name), before[name]) for name in weights)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_freezing_keeps_bottom_bitwise_and_grad_norms_per_depth(model_type):
    family, model = FAMILIES[model_type], tiny_model(model_type, num_layers=L)
    trainable = _trainable(model)
    frozen = set(freeze_bottom_layers(model, 1, embeddings=True))
    assert frozen == {name for name in trainable if _expected_depth(family, name) <= 1}
    before = _snapshot(model)
    optimizer = AdamWL2SP(param_groups(model, lr=1e-2, weight_decay=0.1, l2sp=0.1))
    train_steps(model, optimizer, steps=2)
    for name, param in model.named_parameters():
        if name in frozen:
            assert torch.equal(param, before[name]) and param.grad is None, name
    top = [name for name in trainable if _expected_depth(family, name) == L and name.endswith("weight")]
    assert any(not torch.equal(model.get_parameter(name), before[name]) for name in top)

    norms = grad_norms_by_depth(model)
    parts = {"layer_01", "head", "total"} | ({"pooler"} if "pooler" in family else set())
    assert set(norms) == parts  # the frozen bottom has no gradient
    top_grads = [
        param.grad
        for name, param in model.named_parameters()
        if param.grad is not None and _expected_depth(family, name) == L
    ]
    assert norms["layer_01"] == pytest.approx(math.sqrt(sum(g.square().sum().item() for g in top_grads)))


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_discovery_finds_the_table_layout(model_type, caplog):
    """The map found from the model resolves to the table's layout, for the task model and the bare backbone."""
    for model in (
        tiny_model(model_type, num_layers=L),
        transformers.AutoModel.from_config(tiny_config(model_type, num_layers=L)),
    ):
        table, found = model_layout(model), model_layout(model, discover_layer_map(model))
        for key in ("num_layers", "backbone_prefix", "layers_prefix", "pooler_prefix", "after_prefixes"):
            assert getattr(found, key) == getattr(table, key), (type(model).__name__, key)
    assert not caplog.records  # the table's types are never "discovered"


def test_discovered_map_is_used_and_logged_once(monkeypatch, caplog):
    monkeypatch.delitem(LAYER_MAPS, "megatron-bert")
    caplog.set_level(logging.WARNING, logger="transformers_fine_tuning.architectures")
    model = tiny_model("megatron-bert", num_layers=3)
    model.train()
    rng = torch.get_rng_state()
    layout = model_layout(model)
    assert torch.equal(torch.get_rng_state(), rng) and model.training  # the discovery pass changed nothing
    assert layout.num_layers == 3 and layout.pooler_prefix == "bert.pooler."
    assert layout.after_prefixes == ("bert.encoder.ln.",) and layout.depth("bert.encoder.ln.weight") == 3
    reinit_top_layers(model, 1)
    model_layout(tiny_model("megatron-bert", num_layers=3))
    found = [record.getMessage() for record in caplog.records]
    assert len(found) == 1 and "'megatron-bert'" in found[0] and "layers='encoder.layer'" in found[0]
    # strict mode refuses instead; an explicit layer map overrides discovery
    with pytest.raises(ValueError, match=r"strict mode.*layer_map=LayerMap"):
        model_layout(model, strict=True)
    custom = model_layout(model, LayerMap(layers="encoder.layer"))
    assert custom.pooler_prefix is None and custom.depth("bert.encoder.ln.weight") == 0


class _TwoStacks(nn.Module):
    """A model with two stacks of blocks, both called: discovery cannot choose."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(99, 8)
        self.text = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(2))
        self.vision = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(3))

    def forward(self, input_ids):
        hidden = self.embed(input_ids)
        for block in (*self.text, *self.vision):
            hidden = block(hidden)
        return hidden


def test_ambiguous_and_encoder_decoder_models_name_candidates_and_fix():
    with pytest.raises(
        ValueError,
        match=r"several candidate layer stacks, 'text' \(2 × Sequential\); 'vision' \(3 × Sequential\).*"
        r"layer_map=LayerMap\(layers=.*register_layer_map",
    ):
        model_layout(_TwoStacks())
    assert model_layout(_TwoStacks(), LayerMap(layers="vision")).num_layers == 3
    t5 = transformers.T5ForSequenceClassification(
        transformers.T5Config(d_model=32, d_ff=37, num_layers=2, num_heads=4, d_kv=8, vocab_size=99)
    )
    with pytest.raises(
        ValueError, match=r"encoder–decoder model.*'encoder.block' \(2 × T5Block\); 'decoder.block'"
    ):
        model_layout(t5)


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_the_checkpoints_new_parameters_are_the_tables_new_head(model_type, tmp_path):
    """Saved as its family's pretraining model (else masked LM) and loaded as a sequence classifier, each family's
    missing keys — what from_pretrained initialised — are exactly the new head of the table, found by structure
    for a model built from a config."""
    from transformers.models.auto import modeling_auto

    config = tiny_config(model_type, num_layers=2)
    pretraining = modeling_auto.MODEL_FOR_PRETRAINING_MAPPING_NAMES.get(
        model_type
    ) or modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(model_type)
    torch.manual_seed(0)
    getattr(transformers, pretraining)(config).save_pretrained(tmp_path)
    loaded, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path, output_loading_info=True
    )
    from_checkpoint = model_layout(loaded)
    by_structure = model_layout(transformers.AutoModelForSequenceClassification.from_config(config))
    assert from_checkpoint.novelty == "checkpoint" and by_structure.novelty == "structure"
    assert set(from_checkpoint.novel) == set(info["missing_keys"]) == set(by_structure.novel) != set()
