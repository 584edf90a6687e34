"""LoRA through PEFT with the package's tools: adapters on every family train alone (the base bitwise
unchanged), LLRD gives an adapter the rate of the layer it adapts, the gradient norms are the adapters', the
bottom adapters freeze, what adapters make meaningless is refused, the seed draws the adapters, the flags,
the fine-tune job, and the package without PEFT."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
import transformers

from transformers_fine_tuning import (
    FreezeCallback,
    GradNormCallback,
    L2SPCallback,
    LLRDCallback,
    MixoutCallback,
    ReinitCallback,
    TrainerOptimizerInit,
    apply_lora,
    apply_mixout,
    model_layout,
    param_groups,
    reinit_top_layers,
)
from transformers_fine_tuning.adapters import LORA_TARGET_MODULES, head_modules
from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.build import apply_adapters

from tiny_models import ARCHITECTURES, FirstTokenTask, tiny_config, tiny_model, train_steps, training_args

peft = pytest.importorskip("peft")

_ADAPTED_LAYER = re.compile(r"\.(?:layer|layers|albert_layer_groups)\.(\d+)\..*\.lora_[AB]\.default\.weight$")


def _snapshot(model):
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def _lr_of(optimizer):
    """Each parameter's group learning rate, as built (before the scheduler scaled it)."""
    optimizer = getattr(optimizer, "optimizer", optimizer)
    return {
        name: group.get("initial_lr", group["lr"])
        for group in optimizer.param_groups
        for name in group["param_names"]
    }


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_adapters_of_every_family_train_alone(model_type):
    model = tiny_model(model_type, num_layers=2)
    heads = head_modules(model)
    adapted = apply_lora(model, 4)
    layout = model_layout(adapted)
    assert layout.backbone_prefix == f"base_model.model.{model.base_model_prefix}."
    trainable = {name for name, param in adapted.named_parameters() if param.requires_grad}
    adapters = {name for name in trainable if layout.is_adapter(name)}
    assert {name for name in trainable - adapters} == {
        name
        for name in trainable
        if name.startswith(tuple(f"base_model.model.{h}.modules_to_save." for h in heads))
    }  # besides the adapters, only the new head trains
    assert all(layout.is_head(name) for name in trainable - adapters)
    units = layout.num_layers
    targets = LORA_TARGET_MODULES[model_type]
    assert len(adapters) == 2 * units * len(targets)  # A and B of each target in each layer
    for name in adapters:  # the depth of the layer adapted
        assert layout.depth(name) == int(_ADAPTED_LAYER.search(name).group(1)) + 1, name

    before = _snapshot(adapted)
    train_steps(adapted, torch.optim.AdamW(param_groups(adapted, lr=1e-2, layer_decay=0.5)), steps=2)
    for name, param in adapted.named_parameters():
        assert torch.equal(param, before[name]) == (name not in trainable), name


def test_head_modules_per_family():
    heads = {t: head_modules(tiny_model(t, num_layers=1)) for t in ("distilbert", "deberta-v2", "modernbert")}
    assert heads == {
        "distilbert": ["pre_classifier", "classifier"],
        "deberta-v2": ["pooler", "classifier"],
        "modernbert": ["classifier"],  # its `head` is the pretrained pooler: frozen with the base
    }


def test_llrd_gives_an_adapter_the_rate_of_the_layer_it_adapts_and_grad_norms_are_the_adapters(
    tmp_path, minilm_path
):
    pretrained = transformers.AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    model = apply_lora(pretrained, 4)  # the packaged MiniLM: 6 layers
    base = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    state = _snapshot(model)
    norms = GradNormCallback(every=1)
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path, learning_rate=1e-3),
        train_dataset=FirstTokenTask(n=24),
        callbacks=[LLRDCallback(0.8), norms],
    )
    trainer.train()
    lr = _lr_of(trainer.optimizer)
    adapters = [name for name in lr if ".lora_" in name]
    assert len(adapters) == 6 * 2 * 2  # 6 layers × (query, value) × (A, B)
    for name in adapters:
        layer = int(_ADAPTED_LAYER.search(name).group(1))
        assert lr[name] == pytest.approx(1e-3 * 0.8 ** (6 - layer)), name
    assert {lr[name] for name in lr if ".lora_" not in name} == {1e-3}  # the head's copy, trained
    assert all(torch.equal(model.get_parameter(name), value) for name, value in base.items())  # frozen base
    assert all(
        not torch.equal(model.get_parameter(name), state[name]) for name in adapters if "lora_B" in name
    )
    # gradient norms per depth: the adapters' and the head's; the frozen embeddings have none
    assert set(norms.history[0]) == {"step", *(f"layer_{i:02d}" for i in range(6)), "head", "total"}


def test_freezing_under_lora_freezes_the_bottom_adapters(tmp_path):
    model = apply_lora(tiny_model("bert", num_layers=3), 4)
    before = _snapshot(model)
    trainer = TrainerOptimizerInit(
        model=model,
        args=training_args(tmp_path),
        train_dataset=FirstTokenTask(n=24),
        callbacks=[FreezeCallback(1, embeddings=True)],
    )
    trainer.train()
    in_optimizer = set(_lr_of(trainer.optimizer))
    for name, param in model.named_parameters():
        if ".lora_" not in name:
            continue
        bottom = ".layer.0." in name
        assert (name in in_optimizer) != bottom and param.requires_grad != bottom, name
        if bottom:
            assert torch.equal(param, before[name]), name
        elif "lora_B" in name:
            assert not torch.equal(param, before[name]), name


@pytest.mark.parametrize(
    ("callback", "reason"),
    [
        (ReinitCallback(1), "re-initialised layers would stay at their random values"),
        (MixoutCallback(0.1), "it would do nothing"),
        (L2SPCallback(0.1), "have no pretrained value"),
    ],
)
def test_what_adapters_make_meaningless_is_refused_at_construction(tmp_path, callback, reason):
    model = apply_lora(tiny_model("bert", num_layers=2), 4)
    with pytest.raises(ValueError, match=reason):
        TrainerOptimizerInit(model=model, args=training_args(tmp_path), callbacks=[callback])


def test_functional_surgery_refuses_adapters():
    model = apply_lora(tiny_model("roberta", num_layers=2), 4)
    with pytest.raises(
        ValueError, match=r"Cannot re-initialise layers of a model with adapters.*before wrapping"
    ):
        reinit_top_layers(model, 1)
    with pytest.raises(ValueError, match="Cannot apply Mixout to a model with adapters"):
        apply_mixout(model, 0.1)
    with pytest.raises(ValueError, match="already has adapters"):
        apply_lora(model, 4)
    # L2-SP's groups: the adapters and the head are novel (no pull), nothing pretrained trains
    groups = param_groups(model, lr=1e-3, l2sp=0.1)
    assert {group["name"] for group in groups} == {"novel_decay", "novel_no_decay"}
    assert all(group["l2sp"] == 0.0 for group in groups)


def test_the_seed_draws_the_adapters():
    def lora_a(seed):
        model = tiny_model("bert", num_layers=2)
        torch.manual_seed(seed)
        adapted = apply_lora(model, 4)
        return adapted.get_parameter(
            "base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.default.weight"
        )

    assert torch.equal(lora_a(3), lora_a(3)) and not torch.equal(lora_a(3), lora_a(4))


def test_lora_flags_build_the_adapters_and_conflicts_are_refused(tmp_path):
    out = ["--output_dir", str(tmp_path)]
    args = parse_fine_tune_args(
        ["--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", "query, key", *out]
    )
    adapted = apply_adapters(args.fine_tuning, tiny_model("bert", num_layers=2))
    config = adapted.peft_config["default"]
    assert (config.r, config.lora_alpha, set(config.target_modules)) == (8, 16, {"query", "key"})
    assert (
        adapted.base_model.model.bert.encoder.layer[0].attention.self.query.scaling["default"] == 2.0
    )  # α/r
    recipe = parse_fine_tune_args(["--recipe", "lora", *out])
    assert (recipe.fine_tuning.lora_r, recipe.fine_tuning.lora_alpha, recipe.training.learning_rate) == (
        8,
        8,
        5e-4,
    )
    plain = tiny_model("bert", num_layers=2)
    assert apply_adapters(parse_fine_tune_args(out).fine_tuning, plain) is plain
    for flags, message in [
        (
            ["--lora_r", "8", "--optim", "adamw_l2sp", "--l2sp_pretrained", "0.1"],
            "--l2sp_pretrained cannot",
        ),
        (["--lora_r", "8", "--reinit_layers", "1"], "--reinit_layers cannot be combined with --lora_r"),
        (["--lora_r", "8", "--mixout", "0.1"], "--mixout cannot be combined"),
        (["--lora_alpha", "16"], "--lora_alpha appl"),
        (["--lora_r", "-1"], "--lora_r must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_fine_tune_args([*flags, *out])


def test_the_fine_tune_job_with_lora(tmp_path, minilm_path, glue_dir):
    from transformers_fine_tuning.fine_tune import run

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    model_dir = tmp_path / "tiny-bert"
    config = tiny_config("bert", num_layers=2, vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    transformers.AutoModel.from_config(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    args = parse_fine_tune_args(
        ["--model_name_or_path", str(model_dir), "--data_dir", str(glue_dir / "RTE"), "--recipe", "lora",
         "--layer_decay", "0.9", "--max_train_samples", "16", "--max_eval_samples", "16", "--max_seq_length",
         "32", "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--use_cpu", "true",
         "--output_dir", str(tmp_path / "run")]
    )  # fmt: skip
    trainer, results = run(args)
    assert isinstance(trainer.model, peft.PeftModel) and results.model_type == "bert"
    pretrained = transformers.AutoModel.from_pretrained(model_dir)
    base = trainer.model.get_base_model().bert
    for name, param in pretrained.named_parameters():  # the base is still the pretrained model, bitwise
        if "query" in name or "value" in name:
            name = name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(base.get_parameter(name), param), name
    recorded = json.loads((tmp_path / "run" / "results.json").read_text())
    assert recorded["arguments"]["fine_tuning"]["lora_r"] == 8 and recorded["recipe"] == "lora"


def test_the_package_works_without_peft(tmp_path):
    script = """
import sys
sys.modules["peft"] = None  # as if not installed
sys.path.insert(0, "tests")
import pytest
from tiny_models import tiny_model
from transformers_fine_tuning import apply_lora, param_groups
from transformers_fine_tuning.arguments import parse_fine_tune_args
groups = param_groups(tiny_model("bert", num_layers=2), lr=1.0, layer_decay=0.5)
assert [g["lr"] for g in groups if g["name"] == "head_novel_decay"] == [1.0]
with pytest.raises(ValueError, match=r"--lora_r needs PEFT.*pip install 'transformers-fine-tuning\\[lora\\]'"):
    parse_fine_tune_args(["--lora_r", "8", "--output_dir", sys.argv[1]])
with pytest.raises(ImportError, match=r"pip install 'transformers-fine-tuning\\[lora\\]'"):
    apply_lora(tiny_model("bert", num_layers=2), 8)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
