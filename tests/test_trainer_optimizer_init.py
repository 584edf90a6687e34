"""TrainerOptimizerInit: the optimizer is built late from the model's own parameters, the fine-tuning
callbacks run at the right moments, and without them it is the plain Trainer."""

from __future__ import annotations

import csv

import pytest
import torch
import transformers

from transformers_fine_tuning import (
    AdamWL2SP,
    FineTuningCallback,
    FreezeCallback,
    L2SPCallback,
    LLRDCallback,
    MixoutCallback,
    MixoutLinear,
    ReinitCallback,
    TrainerOptimizerInit,
)

from tiny_models import FirstTokenTask, StopAtStep, tiny_model, training_args


def _unwrapped(optimizer):
    """The optimizer the Trainer built, without Accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)


def _optimizer_param_ids(optimizer):
    return [id(p) for group in optimizer.param_groups for p in group["params"]]


def test_optimizer_tensors_are_the_model_parameters(tmp_path):
    model = tiny_model("bert", num_layers=2)
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=32),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"l2sp": 0.1}),
    )
    trainer.train()
    model_params = {id(p) for p in trainer.model.parameters()}
    assert set(_optimizer_param_ids(trainer.optimizer)) == model_params
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert any(p is q for q in trainer.model.parameters())
    assert isinstance(_unwrapped(trainer.optimizer), AdamWL2SP)


def test_without_callbacks_or_custom_optimizer_it_is_the_plain_trainer(tmp_path):
    losses, weights = [], []
    for cls in (transformers.Trainer, TrainerOptimizerInit):
        trainer = cls(
            model=tiny_model("bert", num_layers=2),
            args=training_args(tmp_path),
            train_dataset=FirstTokenTask(n=32),
        )
        trainer.train()
        losses.append([entry["loss"] for entry in trainer.state.log_history if "loss" in entry])
        weights.append(trainer.model.classifier.weight.detach().clone())
        assert type(_unwrapped(trainer.optimizer)).__name__ == "AdamW"
    assert losses[0] == losses[1]
    assert torch.equal(weights[0], weights[1])


def test_adamwl2sp_with_zero_l2sp_trains_like_trainer_adamw(tmp_path):
    args = {"optim": "adamw_torch", "weight_decay": 0.01}
    plain = transformers.Trainer(
        model=tiny_model("bert", num_layers=2),
        args=training_args(tmp_path, **args),
        train_dataset=FirstTokenTask(n=32),
    )
    plain.train()
    ours = TrainerOptimizerInit(
        model=tiny_model("bert", num_layers=2),
        args=training_args(tmp_path, **args),
        train_dataset=FirstTokenTask(n=32),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"foreach": False}),
    )
    ours.train()
    for (name, a), b in zip(plain.model.named_parameters(), ours.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_args_drive_lr_betas_eps_and_kwargs_override(tmp_path):
    trainer = TrainerOptimizerInit(
        model=tiny_model("bert", num_layers=2),
        args=training_args(
            tmp_path, learning_rate=3e-5, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.01
        ),
        train_dataset=FirstTokenTask(n=32),
        optimizer_cls_and_kwargs=(AdamWL2SP, {"bias_correction": False, "l2sp": 0.5}),
    )
    optimizer = trainer.create_optimizer()
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert all(g["lr"] == 3e-5 and g["betas"] == (0.9, 0.98) and g["eps"] == 1e-6 for g in groups.values())
    assert all(g["bias_correction"] is False for g in groups.values())
    assert groups["pretrained_decay"]["l2sp"] == 0.5 and groups["pretrained_decay"]["weight_decay"] == 0.01
    assert groups["novel_decay"]["l2sp"] == 0.0 and groups["novel_decay"]["weight_decay"] == 0.01


def test_l2sp_callback_selects_adamwl2sp_and_anchors_pretrained_weights(tmp_path):
    model = tiny_model("bert", num_layers=2)
    pretrained = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=32),
        callbacks=[ReinitCallback(1), L2SPCallback(0.1, head_weight_decay=0.01)],
    )
    trainer.train()
    optimizer = _unwrapped(trainer.optimizer)
    assert isinstance(optimizer, AdamWL2SP)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["pretrained_decay"]["l2sp"] == 0.1 and groups["pretrained_decay"]["weight_decay"] == 0.0
    assert groups["novel_decay"]["weight_decay"] == 0.01 and groups["novel_decay"]["l2sp"] == 0.0
    novel = set(groups["novel_decay"]["param_names"]) | set(groups["novel_no_decay"]["param_names"])
    assert "bert.encoder.layer.1.output.dense.weight" in novel and "bert.pooler.dense.weight" in novel
    for name, param in zip(
        groups["pretrained_decay"]["param_names"], groups["pretrained_decay"]["params"], strict=True
    ):
        assert torch.equal(optimizer.state[param]["anchor"], pretrained[name])


def test_llrd_callback_sets_group_learning_rates(tmp_path):
    trainer = TrainerOptimizerInit(
        model=tiny_model("bert", num_layers=2),
        args=training_args(tmp_path, learning_rate=1.0),
        train_dataset=FirstTokenTask(n=32),
        callbacks=[LLRDCallback(0.5)],
    )
    optimizer = trainer.create_optimizer()
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["head_novel_decay"] == 1.0 and lrs["layer_1_pretrained_decay"] == 0.5
    assert lrs["layer_0_pretrained_decay"] == 0.25 and lrs["embeddings_pretrained_decay"] == 0.125
    assert type(optimizer).__name__ == "AdamW"  # LLRD alone keeps the Trainer's optimizer (args.optim)


def test_model_init_gets_surgery_for_every_model(tmp_path):
    built = []

    def model_init():
        model = tiny_model("bert", num_layers=2, seed=len(built))
        built.append(model)
        return model

    trainer = TrainerOptimizerInit(
        model_init=model_init,
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=32),
        callbacks=[MixoutCallback(0.1), FreezeCallback(1)],
    )
    trainer.train()
    assert len(built) == 2  # one in __init__, a fresh one in train()
    for model in built:
        assert isinstance(model.bert.encoder.layer[1].output.dense, MixoutLinear)
        assert not model.bert.embeddings.word_embeddings.weight.requires_grad
    assert trainer.model is built[1]
    assert set(_optimizer_param_ids(trainer.optimizer)) == {
        id(p) for p in built[1].parameters() if p.requires_grad
    }


def test_optimizers_init_factory_and_scheduler_factory(tmp_path):
    seen = {}

    def factory(model, args):
        seen["model"] = model
        seen["device"] = next(model.parameters()).device
        return torch.optim.SGD(model.parameters(), lr=args.learning_rate)

    def scheduler_factory(optimizer, num_training_steps):
        seen["steps"] = num_training_steps
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)

    trainer = TrainerOptimizerInit(
        model=tiny_model("bert", num_layers=2),
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=32),
        optimizers_init=(factory, scheduler_factory),
        callbacks=[ReinitCallback(1)],
    )
    trainer.train()
    assert seen["model"] is trainer.model and seen["steps"] == 6
    assert isinstance(_unwrapped(trainer.optimizer), torch.optim.SGD)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.5e-3)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    trainer = TrainerOptimizerInit(
        model=tiny_model("bert", num_layers=2),
        args=training_args(
            tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=4
        ),
        train_dataset=FirstTokenTask(n=32),
        callbacks=[L2SPCallback(0.01)],
    )
    trainer.train()
    param = trainer.optimizer.param_groups[0]["params"][0]
    assert trainer.state.global_step == 4
    assert _unwrapped(trainer.optimizer).state[param]["step"].item() == 4


def test_resume_from_checkpoint_continues_bit_for_bit_with_original_anchors(tmp_path):
    def make(output_dir, *extra_callbacks):
        return TrainerOptimizerInit(
            model_init=lambda: tiny_model("bert", num_layers=2),
            args=training_args(output_dir, max_steps=6, save_strategy="steps", save_steps=3),
            train_dataset=FirstTokenTask(n=32),
            callbacks=[
                ReinitCallback(1),
                L2SPCallback(0.1, head_weight_decay=0.01),
                LLRDCallback(0.8),
                *extra_callbacks,
            ],
        )

    pretrained = {n: p.detach().clone() for n, p in tiny_model("bert", num_layers=2).named_parameters()}
    uninterrupted = make(tmp_path / "a")
    uninterrupted.train()

    interrupted = make(tmp_path / "b", StopAtStep(3))
    interrupted.train()  # saves checkpoint-3, then stops
    assert interrupted.state.global_step == 3
    resumed = make(tmp_path / "b")
    resumed.train(resume_from_checkpoint=str(tmp_path / "b" / "out" / "checkpoint-3"))

    for (name, a), b in zip(uninterrupted.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b), name
    for group in resumed.optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            if group["l2sp"] > 0:
                assert torch.equal(_unwrapped(resumed.optimizer).state[param]["anchor"], pretrained[name]), (
                    name
                )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"callbacks": [L2SPCallback(0.1)], "optimizer_cls_and_kwargs": (torch.optim.AdamW, {})},
            "keeps L2-SP anchors",
        ),
        (
            {"callbacks": [L2SPCallback(0.1)], "args_overrides": {"optim": "adafactor"}},
            r"conflicts with TrainingArguments\(optim=.adafactor.\)\. Use optimizer_cls_and_kwargs",
        ),
        ({"callbacks": [ReinitCallback(2), FreezeCallback(1)]}, "overlap"),
        ({"callbacks": [LLRDCallback(0.9), LLRDCallback(0.8)]}, "once"),
        ({"callbacks": [LLRDCallback(0.9)], "optimizers_init": (lambda m, a: None, None)}, "builds its own"),
        (
            {"callbacks": [L2SPCallback(0.1)], "optimizer_cls_and_kwargs": (AdamWL2SP, {"l2sp": 0.2})},
            "sets l2sp",
        ),
        ({"callbacks": [ReinitCallback(1)], "optimizers": "ready-made"}, "ready-made"),
    ],
)
def test_conflicting_options_fail_before_training(tmp_path, kwargs, message):
    kwargs = dict(kwargs)
    model = tiny_model("bert", num_layers=2)
    if kwargs.get("optimizers") == "ready-made":
        kwargs["optimizers"] = (torch.optim.AdamW(model.parameters()), None)
    args = training_args(tmp_path, **kwargs.pop("args_overrides", {}))
    with pytest.raises(ValueError, match=message):
        TrainerOptimizerInit(model=model, args=args, train_dataset=FirstTokenTask(n=32), **kwargs)


def test_unsupported_architecture_fails_at_construction(tmp_path):
    model = transformers.AutoModelForSequenceClassification.from_config(
        transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=99, pad_token_id=0)
    )
    # outside the table: refused in strict mode, else its layout is discovered
    with pytest.raises(ValueError, match="supported model types"):
        TrainerOptimizerInit(
            model=model, args=training_args(tmp_path), callbacks=[LLRDCallback(0.9)], strict_layer_map=True
        )
    TrainerOptimizerInit(model=model, args=training_args(tmp_path), callbacks=[LLRDCallback(0.9)])
    # an encoder–decoder model has no one layer stack: refused with the candidates, at construction
    bart = transformers.AutoModelForSequenceClassification.from_config(
        transformers.BartConfig(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=99,
        )
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"encoder–decoder.*'encoder.layers'.*'decoder.layers'.*layer_map="):
        TrainerOptimizerInit(model=bart, args=training_args(tmp_path), callbacks=[LLRDCallback(0.9)])


def test_plain_trainer_refuses_fine_tuning_callbacks(tmp_path):
    trainer = transformers.Trainer(
        model=tiny_model("bert", num_layers=2),
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=32),
        callbacks=[ReinitCallback(1)],
    )
    with pytest.raises(RuntimeError, match="TrainerOptimizerInit"):
        trainer.train()


def _rte_dataset(glue_dir, tokenizer, n):
    with open(glue_dir / "RTE" / "train.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    encoded = tokenizer(
        [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], truncation=True, max_length=64
    )
    labels = [int(r["label"] == "not_entailment") for r in rows]
    return [{**{k: v[i] for k, v in encoded.items()}, "labels": labels[i]} for i in range(n)]


@pytest.mark.parametrize(
    "callback",
    [
        ReinitCallback(2),
        LLRDCallback(0.9),
        L2SPCallback(0.1, head_weight_decay=0.01),
        FreezeCallback(3),
        MixoutCallback(0.1),
    ],
    ids=lambda cb: type(cb).__name__,
)
def test_short_real_training_with_each_callback_on_pretrained_minilm(
    tmp_path, minilm_path, glue_dir, callback
):
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, learning_rate=5e-5, max_steps=4, per_device_train_batch_size=8),
        train_dataset=_rte_dataset(glue_dir, tokenizer, 32),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert "classifier.weight" in moved
    assert set(_optimizer_param_ids(trainer.optimizer)) == {
        id(p) for p in trainer.model.parameters() if p.requires_grad
    }
    if isinstance(callback, FreezeCallback):
        frozen = [
            n
            for n in before
            if n.startswith(("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.2."))
        ]
        assert frozen and not moved & set(frozen)
        assert "bert.encoder.layer.3.output.dense.weight" in moved
    if isinstance(callback, MixoutCallback):
        assert isinstance(trainer.model.bert.encoder.layer[0].attention.self.query, MixoutLinear)
    if isinstance(callback, L2SPCallback):
        anchors = _unwrapped(trainer.optimizer).state
        query = trainer.model.bert.encoder.layer[0].attention.self.query.weight
        assert torch.equal(
            anchors[query]["anchor"], before["bert.encoder.layer.0.attention.self.query.weight"]
        )
    if isinstance(callback, LLRDCallback):
        lrs = {g["name"]: g["initial_lr"] for g in trainer.optimizer.param_groups}
        assert lrs["embeddings_pretrained_decay"] == pytest.approx(5e-5 * 0.9**7)


# ---- every --optim: shaped groups where the optimizer takes groups, surgery alone where it picks its own ----


@pytest.mark.parametrize("optim", ["adamw_torch", "sgd", "adafactor", "rmsprop"])
def test_optims_that_take_groups_get_the_fine_tuning_groups(tmp_path, optim):
    trainer = TrainerOptimizerInit(
        model=tiny_model("bert", num_layers=2),
        args=training_args(tmp_path, optim=optim, max_steps=2),
        train_dataset=FirstTokenTask(n=16),
        callbacks=[LLRDCallback(0.5), FreezeCallback(1, embeddings=True)],
    )
    trainer.train()
    groups = _unwrapped(trainer.optimizer).param_groups
    by_depth = {"_".join(g["name"].split("_")[:2]): g["initial_lr"] for g in groups if g["params"]}
    # η·ξ^(L+1−d) with L = 2 and the bottom layer frozen: the head and the pooler η, the top layer η·ξ
    assert by_depth == {"layer_1": pytest.approx(5e-4), "head_novel": 1e-3, "head_pretrained": 1e-3}


def test_an_optimizer_that_picks_its_own_parameters_works_with_surgery_and_refuses_shaping(tmp_path):
    """LOMO (lomo-optim, CPU) fuses its update into the backward pass and takes the model, not groups: the
    surgery callbacks act on the model it is given; LLRD, which shapes groups, is refused at construction."""
    pytest.importorskip("lomo_optim")
    model = tiny_model("bert", num_layers=2)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if ".layer.0." in n}
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, optim="lomo", max_steps=3, learning_rate=1e-2),
        train_dataset=FirstTokenTask(n=24),
        callbacks=[FreezeCallback(1, embeddings=False)],
    )
    trainer.train()
    assert type(_unwrapped(trainer.optimizer)).__name__ == "Lomo"
    moved = [n for n, p in trainer.model.named_parameters() if n in frozen and not torch.equal(p, frozen[n])]
    assert moved == []  # the frozen layer stayed bitwise as it was
    assert any(
        not torch.equal(p, q)
        for p, q in zip(
            trainer.model.parameters(), tiny_model("bert", num_layers=2).parameters(), strict=True
        )
    )
    with pytest.raises(
        ValueError,
        match=r"LLRDCallback\(0\.5\) shapes .* --optim lomo chooses its own parameters.*adamw_torch",
    ):
        TrainerOptimizerInit(
            model=tiny_model("bert", num_layers=2),
            args=training_args(tmp_path, optim="lomo"),
            train_dataset=FirstTokenTask(n=8),
            callbacks=[LLRDCallback(0.5)],
        )


def test_a_new_callback_brings_its_own_check(tmp_path):
    """The Trainer only runs the checks: a technique of a user's refuses what it cannot work with, by itself."""

    class NeedsFourLayers(FineTuningCallback):
        def check(self, plan, layout, optimizer):
            super().check(plan, layout, optimizer)
            if layout.num_layers < 4:
                raise ValueError(f"{self.describe()} needs 4 layers, the model has {layout.num_layers}")

    with pytest.raises(ValueError, match=r"NeedsFourLayers\(\) needs 4 layers, the model has 2"):
        TrainerOptimizerInit(
            model=tiny_model("bert", num_layers=2),
            args=training_args(tmp_path),
            callbacks=[NeedsFourLayers()],
        )
    callback = NeedsFourLayers()
    callback.option = "--needs_four"
    with pytest.raises(
        ValueError, match="--needs_four and --needs_four: each fine-tuning technique may be given once"
    ):
        TrainerOptimizerInit(
            model=tiny_model("bert", num_layers=4),
            args=training_args(tmp_path),
            callbacks=[callback, callback],
        )


def test_names_removed_in_0_2_are_refused_naming_their_replacement():
    """Deprecated in 0.1.0, removed in 0.2.0: ``--optimizer``, ``--l2sp_novel``, ``L2SPCallback(pretrained=)``."""
    from transformers_fine_tuning.arguments import parse_fine_tune_args

    with pytest.raises(ValueError) as refused:
        parse_fine_tune_args(
            ["--optimizer", "adamw_l2sp", "--l2sp_pretrained", "0.1", "--l2sp_novel", "0.01"]
        )
    assert "--optimizer (removed in 0.2.0: use --optim adamw_l2sp)" in str(refused.value)
    assert "--l2sp_novel (removed in 0.2.0: use --l2sp_head_weight_decay)" in str(refused.value)
    with pytest.raises(TypeError, match="pretrained"):
        L2SPCallback(pretrained=0.3)


def test_build_fine_tuning_optimizer_serves_a_plain_trainer(tmp_path):
    """README's use without our Trainer: the optimizer built for L2-SP and LLRD, given to ``transformers.Trainer``,
    anchors the pretrained weights and decays the rates by depth; training pulls nothing away from the anchors."""
    from transformers_fine_tuning import AdamWL2SP, build_fine_tuning_optimizer

    model = tiny_model("bert", num_layers=2)
    pretrained = {name: param.detach().clone() for name, param in model.named_parameters()}
    args = training_args(tmp_path, learning_rate=1e-3)
    optimizer = build_fine_tuning_optimizer(model, args, [L2SPCallback(0.1), LLRDCallback(0.5)])
    assert isinstance(optimizer, AdamWL2SP)
    rates = sorted({group["lr"] for group in optimizer.param_groups}, reverse=True)
    assert rates == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])  # head, layer 1, layer 0, embeddings
    transformers.Trainer(
        model=model, args=args, train_dataset=FirstTokenTask(n=24), optimizers=(optimizer, None)
    ).train()
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            if group["l2sp"] > 0:
                assert torch.equal(optimizer.state[param]["anchor"], pretrained[name]), name
                assert not torch.equal(param, pretrained[name]), name  # it trained


@pytest.mark.parametrize(
    ("offline", "exported", "kept"),
    [(True, None, False), (True, "1", True), (False, None, True)],
    ids=["offline", "offline-but-exported", "online"],
)
def test_hub_kernels_turned_off_offline_unless_asked_for(
    tmp_path, monkeypatch, tiny_bert_dir, offline, exported, kept
):
    """transformers 5.25 kernelizes every from_pretrained model, fetching kernels from the Hub at the first
    evaluation: offline on a GPU that fails an epoch into training, so the Trainer turns them off first; a user who
    exported USE_HUB_KERNELS (kernels cached while online) keeps them, and online they stay as transformers set them."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    if exported is None:
        monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    else:
        monkeypatch.setenv("USE_HUB_KERNELS", exported)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    if not getattr(model, "use_kernels", False):
        pytest.skip(f"transformers {transformers.__version__} does not kernelize from_pretrained models")
    TrainerOptimizerInit(model=model, args=training_args(tmp_path))
    assert model.use_kernels is kept
