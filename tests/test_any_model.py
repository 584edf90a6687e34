"""Every encoder head class, a module of your own, every fine-tuning callback, every route: each cell asserts an
effect or a refusal at construction.

The "pretrained" checkpoint is a tiny random ``BertForPreTraining`` saved to disk, so that each head class loads
it the way a user's does: what ``from_pretrained`` finds (the backbone, the pooler, the masked-LM head) is
pretrained, what it has to initialise (the new classifier, ``qa_outputs``) is novel. Routes:

* ``trainer``: :class:`TrainerOptimizerInit` with the callback;
* ``by_hand``: a plain ``Trainer`` given ``optimizers=(build_fine_tuning_optimizer(model, args, [callback]), None)``
  — the route of your own loop, which must give the same model and groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import transformers
from torch import nn

from transformers_fine_tuning import (
    AdamWL2SP,
    EMACallback,
    FreezeCallback,
    L2SPCallback,
    LLRDCallback,
    MixoutCallback,
    MixoutLinear,
    NoisyTuneCallback,
    R3FCallback,
    ReinitCallback,
    TrainerOptimizerInit,
    WiSEFTCallback,
    apply_lora,
    build_fine_tuning_optimizer,
    freeze_bottom_layers,
    model_layout,
    param_groups,
    reinit_top_layers,
    strip_mixout,
)
from transformers_fine_tuning.adapters import peft_available

from tiny_models import tiny_config, training_args

NUM_LAYERS = 2
LR = 1e-3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny 'pretrained' BERT with its pooler and masked-LM head, as a directory from_pretrained loads."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pretrained")
    transformers.BertForPreTraining(tiny_config("bert", num_layers=NUM_LAYERS)).save_pretrained(path)
    return str(path)


class PoolerClassifier(nn.Module):
    """A head of your own over ``AutoModel`` (the stabilizer library's pattern): the loss needs the labels."""

    def __init__(self, path: str, num_labels: int = 2) -> None:
        super().__init__()
        self.backbone = transformers.AutoModel.from_pretrained(path)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(self.backbone.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None):
        pooled = self.backbone(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


def _load(cls) -> Callable[[str], tuple[nn.Module, set[str]]]:
    def build(path: str) -> tuple[nn.Module, set[str]]:
        model, info = cls.from_pretrained(path, num_labels=2, output_loading_info=True)
        return model, set(info["missing_keys"]) | {key for key, *_ in info["mismatched_keys"]}

    return build


def _wrapper(path: str) -> tuple[nn.Module, set[str]]:
    torch.manual_seed(0)
    return PoolerClassifier(path), {"classifier.weight", "classifier.bias"}


def _examples(head: str, n: int = 8) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    examples = []
    for index in range(n):
        ids = torch.randint(5, 99, (8,), generator=generator)
        if head == "multiple_choice":
            examples.append({"input_ids": torch.stack([ids, ids.flip(0)]), "labels": torch.tensor(index % 2)})
        elif head == "token":
            examples.append({"input_ids": ids, "labels": (ids > 50).long()})
        elif head == "qa":
            examples.append(
                {"input_ids": ids, "start_positions": torch.tensor(1), "end_positions": torch.tensor(3)}
            )
        elif head == "masked_lm":
            labels = torch.full((8,), -100)
            labels[2] = ids[2]
            examples.append({"input_ids": ids, "labels": labels})
        else:
            examples.append({"input_ids": ids, "labels": torch.tensor(index % 2)})
    return examples


@dataclass(frozen=True)
class Head:
    name: str
    build: Callable[[str], tuple[nn.Module, set[str]]]


HEADS = [
    Head("sequence", _load(transformers.AutoModelForSequenceClassification)),
    Head("token", _load(transformers.AutoModelForTokenClassification)),
    Head("qa", _load(transformers.AutoModelForQuestionAnswering)),
    Head("multiple_choice", _load(transformers.AutoModelForMultipleChoice)),
    Head("masked_lm", _load(transformers.AutoModelForMaskedLM)),
    Head("wrapper", _wrapper),
]
HEAD_IDS = [head.name for head in HEADS]
ROUTES = ["trainer", "by_hand"]


def _trainer(model, tmp_path, callbacks, route, head, **kwargs):
    args = training_args(tmp_path, max_steps=2, per_device_train_batch_size=4, **kwargs)
    data = _examples(head.name)
    if route == "trainer":
        return TrainerOptimizerInit(model=model, args=args, train_dataset=data, callbacks=callbacks)
    optimizer = build_fine_tuning_optimizer(model, args, callbacks)
    return transformers.Trainer(model=model, args=args, train_dataset=data, optimizers=(optimizer, None))


def _optimizer(trainer):
    if trainer.optimizer is None:
        trainer.create_optimizer()
    return getattr(trainer.optimizer, "optimizer", trainer.optimizer)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


# ---- novelty: what the checkpoint did not hold, for every head --------------------------------------------


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_novel_is_what_the_checkpoint_did_not_hold(checkpoint, head):
    model, missing = head.build(checkpoint)
    layout = model_layout(model)
    assert set(layout.novel) == missing
    assert layout.novelty == "checkpoint"
    if head.name == "masked_lm":  # continued pretraining: the masked-LM head came from the checkpoint
        assert not missing and not layout.is_novel("cls.predictions.transform.dense.weight")
    else:  # every other head adds a new one
        assert missing
    if head.name == "wrapper":  # the backbone inside your module, the head outside it at depth L + 1
        assert layout.backbone_prefix == "backbone." and layout.layers_prefix == "backbone.encoder.layer."
        assert layout.depth("classifier.weight") == NUM_LAYERS + 1
        assert layout.depth("backbone.embeddings.word_embeddings.weight") == 0


class _BuiltFromAConfig(nn.Module):
    """A module of your own around a backbone built from a config: no checkpoint was loaded. (Its own class, so
    that the once-per-model-type log is this test's to read.)"""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = transformers.BertModel(tiny_config("bert", num_layers=NUM_LAYERS))
        self.head = nn.Linear(32, 2)


def test_a_model_built_from_a_config_says_what_it_treats_as_new(caplog):
    with caplog.at_level("INFO", logger="transformers_fine_tuning.architectures"):
        layout = model_layout(_BuiltFromAConfig())
    assert layout.novelty == "structure" and set(layout.novel) == {"head.weight", "head.bias"}
    assert "treated as new (head.bias, head.weight)" in caplog.text
    plain = model_layout(
        transformers.BertForSequenceClassification(tiny_config("bert", num_layers=NUM_LAYERS))
    )
    assert plain.novelty == "structure" and set(plain.novel) == {"classifier.weight", "classifier.bias"}


def test_novel_names_of_your_own_join_the_novel_groups(checkpoint, tmp_path):
    model, _ = HEADS[0].build(checkpoint)
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path),
        callbacks=[L2SPCallback(0.1)],
        novel=["bert.pooler"],
    )
    anchored = _anchored_names(trainer)
    assert not any(name.startswith(("bert.pooler.", "classifier.")) for name in anchored)
    assert "bert.encoder.layer.0.output.dense.weight" in anchored
    with pytest.raises(ValueError, match="novel='pooler' names no parameter or module"):
        TrainerOptimizerInit(
            model=model, args=training_args(tmp_path), callbacks=[LLRDCallback(0.9)], novel=["pooler"]
        )


def _anchored_names(trainer) -> dict[str, torch.Tensor]:
    optimizer = _optimizer(trainer)
    return {
        name: optimizer.state[param]["anchor"]
        for group in optimizer.param_groups
        for name, param in zip(group["param_names"], group["params"], strict=True)
        if "anchor" in optimizer.state.get(param, {})
    }


# ---- the callbacks, head by head, route by route ------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_l2sp_anchors_the_pretrained_weights_and_not_the_new_head(checkpoint, tmp_path, head, route):
    model, missing = head.build(checkpoint)
    loaded = _snapshot(model)
    anchors = _anchored_names(_trainer(model, tmp_path, [L2SPCallback(0.1)], route, head))
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert set(anchors) == trainable - missing
    assert all(torch.equal(anchor, loaded[name]) for name, anchor in anchors.items())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_llrd_gives_each_depth_its_rate(checkpoint, tmp_path, head, route):
    model, _ = head.build(checkpoint)
    trainer = _trainer(model, tmp_path, [LLRDCallback(0.5)], route, head)
    layout = model_layout(model)
    for group in _optimizer(trainer).param_groups:
        for name in group["param_names"]:
            assert group["lr"] == pytest.approx(LR * 0.5 ** (NUM_LAYERS + 1 - layout.depth(name))), name


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_freeze_leaves_the_bottom_bitwise_unchanged(checkpoint, tmp_path, head, route):
    model, _ = head.build(checkpoint)
    if head.name == "masked_lm":  # the decoder is the word-embedding matrix: freezing one freezes the other
        with pytest.raises(ValueError, match=r"tied to cls\.predictions\.decoder\.weight"):
            _trainer(model, tmp_path, [FreezeCallback(1)], route, head)
        model, _ = head.build(checkpoint)
        callback = FreezeCallback(1, embeddings=False)
    else:
        callback = FreezeCallback(1)
    before = _snapshot(model)
    trainer = _trainer(model, tmp_path, [callback], route, head)
    trainer.train()
    layout = model_layout(model)
    for name, param in model.named_parameters():
        depth = layout.depth(name)
        if depth == 1 or (callback.embeddings and depth == 0):
            assert not param.requires_grad and torch.equal(param, before[name]), name
        else:
            assert param.requires_grad, name
    top = f"{layout.layers_prefix}{NUM_LAYERS - 1}.output.dense.weight"
    assert not torch.equal(dict(model.named_parameters())[top], before[top])  # the rest trained


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_reinit_redraws_the_top_layer_with_the_backbones_initializer(checkpoint, tmp_path, head, route):
    model, _ = head.build(checkpoint)
    before = _snapshot(model)
    trainer = _trainer(model, tmp_path, [ReinitCallback(1), L2SPCallback(0.1)], route, head)
    layout = model_layout(model)
    top = f"{layout.layers_prefix}{NUM_LAYERS - 1}.intermediate.dense.weight"
    weights = dict(model.named_parameters())[top].detach()
    assert not torch.equal(weights, before[top])
    assert weights.std().item() == pytest.approx(0.02, abs=0.004)  # BERT's N(0, 0.02²), not nn.Linear's
    bottom = f"{layout.layers_prefix}0.intermediate.dense.weight"
    assert torch.equal(dict(model.named_parameters())[bottom], before[bottom])
    anchors = _anchored_names(trainer)
    assert top not in anchors and bottom in anchors  # re-initialised: novel from then on


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_mixout_trains_then_saves_plain_weights_that_reload_to_the_same_outputs(
    checkpoint, tmp_path, head, route
):
    model, missing = head.build(checkpoint)
    trainer = _trainer(model, tmp_path, [MixoutCallback(0.1)], route, head)
    mixed = [name for name, module in model.named_modules() if isinstance(module, MixoutLinear)]
    assert mixed and not any(f"{name}.weight" in missing for name in mixed)  # the new head is not mixed
    trainer.train()
    model.eval()
    batch = transformers.default_data_collator(_examples(head.name, 2))
    inputs = {key: value for key, value in batch.items() if key == "input_ids"}
    if head.name == "wrapper":
        inputs["labels"] = batch["labels"]
    with torch.no_grad():
        expected = model(**inputs)["logits" if head.name != "qa" else "start_logits"]
    if head.name == "wrapper":
        state = model.state_dict()
        assert not any("mixout" in key for key in state)
        strip_mixout(model)
        assert not any(isinstance(module, MixoutLinear) for module in model.modules())
        assert list(model.state_dict()) == list(state)
        return
    trainer.save_model(str(tmp_path / "saved"))
    reloaded, info = type(model).from_pretrained(str(tmp_path / "saved"), output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    reloaded.eval()
    with torch.no_grad():
        got = reloaded(**inputs)["logits" if head.name != "qa" else "start_logits"]
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_noisytune_perturbs_the_pretrained_weights_only(checkpoint, tmp_path, head, route):
    model, missing = head.build(checkpoint)
    before = _snapshot(model)
    _trainer(model, tmp_path, [NoisyTuneCallback(0.15, seed=3)], route, head)
    for name, param in model.named_parameters():
        if name in missing:
            assert torch.equal(param, before[name]), name
        elif param.numel() >= 2 and before[name].float().std() > 0:
            assert not torch.equal(param, before[name]), name


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_r3f_trains_every_head_with_logits_and_refuses_qa_at_construction(checkpoint, tmp_path, head):
    model, _ = head.build(checkpoint)
    if head.name == "qa":
        with pytest.raises(ValueError, match="start_logits and end_logits"):
            _trainer(model, tmp_path, [R3FCallback(1.0)], "trainer", head)
        return
    trainer = _trainer(model, tmp_path, [R3FCallback(1.0, eps=1e-2)], "trainer", head)
    trainer.train()
    terms = [entry["loss_term/r3f"] for entry in trainer.state.log_history if "loss_term/r3f" in entry]
    assert len(terms) == 2 and all(0.0 < term < float("inf") for term in terms)


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_wise_ft_at_alpha_zero_restores_the_pretrained_backbone_under_the_trained_head(
    checkpoint, tmp_path, head
):
    model, missing = head.build(checkpoint)
    loaded = _snapshot(model)
    trainer = _trainer(model, tmp_path, [WiSEFTCallback(0.0)], "trainer", head)
    trainer.train()
    for name, param in model.named_parameters():
        if name in missing:
            assert not torch.equal(param, loaded[name]), name  # trained, not interpolated
        else:
            torch.testing.assert_close(param.detach(), loaded[name], rtol=0, atol=1e-7, msg=name)


def test_wise_ft_refuses_a_checkpoint_your_module_cannot_load(checkpoint, tmp_path):
    model, _ = _wrapper(checkpoint)
    with pytest.raises(ValueError, match=r"cannot load .*Leave pretrained unset"):
        _trainer(model, tmp_path, [WiSEFTCallback(0.5, pretrained=checkpoint)], "trainer", HEADS[-1])


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_ema_ends_every_head_on_the_average_of_its_iterates(checkpoint, tmp_path, head):
    model, _ = head.build(checkpoint)
    callback = EMACallback(0.5)
    trainer = _trainer(model, tmp_path, [callback], "trainer", head)
    trainer.train()
    assert callback.applied and callback.average.num_averaged == 2
    averaged = callback.average.state_dict()
    named = dict(model.named_parameters())
    assert averaged["averages"] and all(
        torch.equal(named[name], value) for name, value in averaged["averages"].items()
    )


@pytest.mark.parametrize(
    "callback",
    [R3FCallback(1.0), EMACallback(0.9), WiSEFTCallback(0.5)],
    ids=["r3f", "ema", "wise_ft"],
)
def test_callbacks_that_act_while_training_are_refused_by_hand_naming_the_route(
    checkpoint, tmp_path, callback
):
    model, _ = HEADS[0].build(checkpoint)
    with pytest.raises(ValueError, match=r"act while the model trains.*TrainerOptimizerInit\(callbacks="):
        build_fine_tuning_optimizer(model, training_args(tmp_path), [callback])


def test_surgery_by_hand_runs_once_per_model(checkpoint, tmp_path):
    model, _ = HEADS[0].build(checkpoint)
    callbacks = [NoisyTuneCallback(0.15, seed=1)]
    build_fine_tuning_optimizer(model, training_args(tmp_path), callbacks)
    once = _snapshot(model)
    build_fine_tuning_optimizer(model, training_args(tmp_path), callbacks)  # rebuilt: no second dose of noise
    assert all(torch.equal(param, once[name]) for name, param in model.named_parameters())


# ---- LoRA on every head ---------------------------------------------------------------------------------


@pytest.mark.skipif(not peft_available(), reason="needs PEFT")
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_lora_trains_the_adapters_and_the_new_head_only(checkpoint, tmp_path, head):
    model, missing = head.build(checkpoint)
    adapted = apply_lora(model, 2)
    before = _snapshot(adapted)
    trainer = _trainer(adapted, tmp_path, [LLRDCallback(0.5)], "trainer", head)
    trainer.train()
    layout = model_layout(adapted)
    changed = {name for name, param in adapted.named_parameters() if not torch.equal(param, before[name])}
    assert changed and all(layout.is_adapter(name) or "modules_to_save" in name for name in changed)
    saved = {name.split(".modules_to_save")[0].removeprefix("base_model.model.") for name in changed}
    assert saved - {name for name in saved if layout.is_adapter(name)} <= {
        name.rsplit(".", 1)[0] for name in missing
    }
    for group in _optimizer(trainer).param_groups:  # an adapter has the depth of the layer it adapts
        for name in group["param_names"]:
            assert group["initial_lr"] == pytest.approx(LR * 0.5 ** (NUM_LAYERS + 1 - layout.depth(name))), (
                name
            )


# ---- other routes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", [HEADS[0], HEADS[-1]], ids=["sequence", "wrapper"])
def test_a_plain_trainer_with_adamwl2sp_refuses_to_anchor_the_new_head(checkpoint, tmp_path, head):
    model, _ = head.build(checkpoint)
    trainer = transformers.Trainer(
        model=model,
        args=training_args(tmp_path),
        train_dataset=_examples(head.name),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"l2sp": 0.1}),
    )
    with pytest.raises(ValueError, match=r"newly initialised .*param_groups"):
        trainer.create_optimizer()


def test_a_pretrained_head_is_anchored_by_a_plain_trainer(checkpoint, tmp_path):
    model, missing = HEADS[4].build(checkpoint)  # masked LM: every parameter came from the checkpoint
    assert not missing
    trainer = transformers.Trainer(
        model=model,
        args=training_args(tmp_path),
        train_dataset=_examples("masked_lm"),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"l2sp": 0.1}),
    )
    optimizer = _optimizer(trainer)
    params = [param for group in optimizer.param_groups for param in group["params"]]
    assert params and all(torch.equal(optimizer.state[param]["anchor"], param) for param in params)


def test_group_keys_the_optimizer_ignores_are_refused(checkpoint, tmp_path):
    model, _ = HEADS[0].build(checkpoint)
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path),
        callbacks=[LLRDCallback(0.9)],
        optimizer_cls_and_kwargs=(torch.optim.AdamW, {"l2sp": 0.1}),
    )
    with pytest.raises(ValueError, match=r"AdamW takes no 'l2sp'.*AdamWL2SP"):
        trainer.create_optimizer()
    groups = param_groups(model, lr=LR, l2sp=0.1)
    assert {group["l2sp"] for group in groups if "classifier.weight" in group["param_names"]} == {0.0}


def test_messages_name_the_python_spelling_to_python_users(checkpoint, tmp_path):
    model, _ = HEADS[0].build(checkpoint)
    with pytest.raises(
        ValueError, match=r"Use optimizer_cls_and_kwargs=\(transformers_fine_tuning.AdamWL2SP"
    ) as error:
        TrainerOptimizerInit(
            model=model,
            args=training_args(tmp_path),
            callbacks=[L2SPCallback(0.1)],
            optimizer_cls_and_kwargs=(torch.optim.SGD, {}),
        )
    assert "--optim" not in str(error.value)


# ---- a SentenceTransformer ---------------------------------------------------------------------------------


def test_a_sentence_transformer_works_by_default(minilm_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(minilm_path, device="cpu")
    layout = model_layout(model)
    assert layout.layers_prefix == "0.model.encoder.layer." and layout.num_layers == 6
    assert layout.novelty == "checkpoint" and not layout.novel  # everything came from the checkpoint
    total = sum(1 for _ in model.parameters())
    frozen = freeze_bottom_layers(model, 2)
    per_layer = sum(1 for name, _ in model.named_parameters() if name.startswith("0.model.encoder.layer.0."))
    embeddings = sum(1 for name, _ in model.named_parameters() if name.startswith("0.model.embeddings."))
    assert len(frozen) == embeddings + 2 * per_layer < total
    before = _snapshot(model)
    redrawn = reinit_top_layers(model, 1)
    assert redrawn and all(
        name.startswith(("0.model.encoder.layer.5.", "0.model.pooler.")) for name in redrawn
    )
    assert not torch.equal(dict(model.named_parameters())[redrawn[0]], before[redrawn[0]])


# ---- discovery that checks itself ---------------------------------------------------------------------------


def _squeezebert() -> nn.Module:
    config = transformers.SqueezeBertConfig(
        hidden_size=32,
        embedding_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=36,
        vocab_size=99,
        q_groups=2,
        k_groups=2,
        v_groups=2,
        post_attention_groups=2,
        intermediate_groups=4,
        output_groups=4,
    )
    return transformers.SqueezeBertForSequenceClassification(config)


@pytest.mark.parametrize(
    ("build", "layers", "pooler"),
    [
        (_squeezebert, "encoder.layers", "pooler"),  # its encoder calls each block's forward directly
        (
            lambda: transformers.NystromformerForSequenceClassification(
                transformers.NystromformerConfig(
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=37,
                    vocab_size=99,
                )
            ),
            "encoder.layer",
            None,
        ),
    ],
    ids=["squeezebert", "nystromformer"],
)
def test_discovery_outside_the_table_finds_the_embeddings_below_the_stack(build, layers, pooler):
    model = build()
    layout = model_layout(model)
    assert layout.layer_map.layers == layers and layout.layer_map.pooler == pooler
    assert layout.layer_map.after_layers == ()
    backbone = layout.backbone_prefix
    assert layout.depth(f"{backbone}embeddings.word_embeddings.weight") == 0
    redrawn = reinit_top_layers(model, 1)
    assert not any("embeddings" in name for name in redrawn)


class _Reversed(nn.Module):
    """Runs its layer list top first: a map read from the list's order would be upside down."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(99, 8)
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(3))

    def forward(self, input_ids):
        hidden = self.embed(input_ids)
        for block in reversed(self.layers):
            hidden = block(hidden)
        return hidden

    def get_input_embeddings(self):
        return self.embed


def test_discovery_refuses_a_map_the_forward_pass_contradicts():
    with pytest.raises(
        ValueError,
        match=r"layers ran in the order \[2, 1, 0\].*register_layer_map\(None, LayerMap\(layers='layers'\)\)",
    ):
        model_layout(_Reversed())
