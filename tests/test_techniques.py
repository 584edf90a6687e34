"""The techniques' registry: one declaration of each technique's flags, order and conflicts, and its three readers —
the argument checks, the callbacks' checks and the builder — agreeing with it."""

from __future__ import annotations

import itertools
import re
from dataclasses import fields

import pytest

from transformers_fine_tuning import callbacks as callbacks_module
from transformers_fine_tuning.arguments import FineTuningArguments
from transformers_fine_tuning.build import fine_tuning_callbacks
from transformers_fine_tuning.callbacks import FineTuningCallback
from transformers_fine_tuning.techniques import EXCLUSIVE, TECHNIQUES, order_of, technique
from transformers_fine_tuning.techniques.base import OptimizerSetup, in_registry_order, prepare_fine_tuning

#: A valid value away from the default for every technique flag and option.
GIVEN = {
    "lora_r": 4,
    "lora_alpha": 8.0,
    "lora_dropout": 0.1,
    "lora_target_modules": "query",
    "reinit_layers": 1,
    "freeze_layers": 1,
    "freeze_embeddings": True,
    "layer_decay": 0.9,
    "layer_decay_floor": 0.1,
    "layer_decay_freeze_below": 0.1,
    "mixout": 0.1,
    "l2sp_pretrained": 0.1,
    "l2sp_head_weight_decay": 0.01,
    "lp_ft_head_steps": 5.0,
    "lp_ft_head_lr": 1e-3,
    "gradual_unfreeze": 5.0,
    "unfreeze_warmup": 2.0,
    "ema_decay": 0.9,
    "ema_half_life": 10.0,
    "weight_average_eval": False,
    "swa_start": 0.5,
    "swa_every": 2,
    "r3f_lambda": 1.0,
    "r3f_eps": 1e-3,
    "r3f_noise": "uniform",
    "wise_ft_alpha": 0.5,
    "wise_ft_alphas": "0,0.5,1",
    "wise_ft_held_out": 0.2,
    "wise_ft_held_out_seed": 1,
    "noisytune": 0.15,
    "best_held_out": 0.1,
}
#: FineTuningArguments fields that are the optimizer's own, not a technique's (checked by check() against --optim).
OPTIMIZER_FLAGS = {"bias_correction", "l2sp_coupled", "l2sp_selective", "reinit_pooler", "best_held_out_seed"}


def _check(**values):
    FineTuningArguments(**values).check(adamw_l2sp=True)


def test_every_argument_is_declared_once():
    """A flag is a technique's (turns it on), an option of one or more, or the optimizer's: a new flag must be
    declared in the registry to be checked."""
    declared = [name for entry in TECHNIQUES for name in entry.flags]
    assert len(declared) == len(set(declared))
    options = {name for entry in TECHNIQUES for name in entry.options}
    assert not options & set(declared)
    every = {f.name for f in fields(FineTuningArguments)}
    assert every == set(declared) | options | OPTIMIZER_FLAGS
    assert set(GIVEN) == set(declared) | options
    for entry in TECHNIQUES:
        assert set(entry.exclusive) <= set(EXCLUSIVE), entry.name


@pytest.mark.parametrize("entry", TECHNIQUES, ids=lambda entry: entry.name)
def test_each_technique_alone_passes_the_checks(entry):
    _check(**{name: GIVEN[name] for name in entry.flags[:1]})


@pytest.mark.parametrize(
    "option", sorted({name for entry in TECHNIQUES for name in entry.options}), ids=lambda name: name
)
def test_an_option_without_its_technique_is_refused_naming_it(option):
    owners = [entry for entry in TECHNIQUES if option in entry.options]
    with pytest.raises(
        ValueError, match=rf"^--{option}( false)? applies with --{owners[0].flags[0]}\b.* only"
    ):
        _check(**{option: GIVEN[option]})
    for owner in owners:  # and it is accepted with any technique that declares it
        _check(**{owner.flags[0]: GIVEN[owner.flags[0]], option: GIVEN[option]})


@pytest.mark.parametrize("group", sorted(EXCLUSIVE))
def test_techniques_of_one_exclusive_group_are_refused_together(group):
    members = [entry for entry in TECHNIQUES if group in entry.exclusive]
    assert len(members) >= 2
    for first, second in itertools.combinations(members, 2):
        with pytest.raises(ValueError, match=f"--{first.flags[0]} and --{second.flags[0]}: "):
            _check(**{first.flags[0]: GIVEN[first.flags[0]], second.flags[0]: GIVEN[second.flags[0]]})


def test_the_flags_of_one_technique_exclude_each_other_where_it_is_exclusive():
    with pytest.raises(
        ValueError, match=re.escape(f"--ema_decay and --ema_half_life: {EXCLUSIVE['weight average']}")
    ):
        _check(ema_decay=0.9, ema_half_life=10.0)


@pytest.mark.parametrize(
    "entry", [entry for entry in TECHNIQUES if entry.with_adapters], ids=lambda entry: entry.name
)
def test_techniques_that_cannot_act_under_adapters_are_refused_with_lora_with_the_registrys_reason(entry):
    flag = entry.flags[0]
    with pytest.raises(ValueError) as refused:
        _check(lora_r=4, **{flag: GIVEN[flag]})
    assert (
        str(refused.value)
        == f"--{flag} cannot be combined with --lora_r: {entry.with_adapters}. Drop one of the two."
    )


def test_techniques_that_can_act_under_adapters_are_accepted_with_lora():
    for entry in TECHNIQUES:
        if entry.with_adapters is None and entry.name != "lora":
            _check(lora_r=4, **{entry.flags[0]: GIVEN[entry.flags[0]]})


def test_the_builder_builds_in_the_registrys_order_each_callback_of_its_technique():
    arguments = FineTuningArguments(
        noisytune=0.15,
        wise_ft_alpha=0.5,
        r3f_lambda=1.0,
        swa_start=0.5,
        gradual_unfreeze=5.0,
        l2sp_pretrained=0.1,
        mixout=0.1,
        layer_decay=0.9,
        freeze_layers=1,
        reinit_layers=1,
    )
    built = fine_tuning_callbacks(arguments, seed=3)
    names = [callback.technique for callback in built]
    assert names == sorted(names, key=order_of)
    assert names == [
        "reinit",
        "freeze",
        "llrd",
        "mixout",
        "l2sp",
        "gradual_unfreeze",
        "swa",
        "r3f",
        "wise_ft",
        "noisytune",
    ]
    assert [callback.option for callback in built][:2] == ["--reinit_layers 1", "--freeze_layers 1"]
    assert built[-1].option == "--noisytune 0.15" and built[-1].seed == 3


def test_every_callback_of_the_package_names_a_registered_technique():
    classes = [
        value
        for value in vars(callbacks_module).values()
        if isinstance(value, type) and issubclass(value, FineTuningCallback) and value.technique is not None
    ]
    assert len({cls.technique for cls in classes}) >= 12
    for cls in classes:
        assert technique(cls.technique).name == cls.technique


def test_callbacks_are_checked_and_prepared_in_the_registrys_order_the_users_own_first():
    from transformers_fine_tuning.callbacks import MixoutCallback, NoisyTuneCallback, ReinitCallback

    class Mine(FineTuningCallback):
        pass

    given = [NoisyTuneCallback(0.1), MixoutCallback(0.1), Mine(), ReinitCallback(1)]
    assert [type(cb) for cb in in_registry_order(given)] == [
        Mine,
        ReinitCallback,
        MixoutCallback,
        NoisyTuneCallback,
    ]
    with pytest.raises(KeyError, match="no technique 'nope' in the registry; there are: lora, reinit"):
        technique("nope")


def test_a_callback_of_an_exclusive_group_is_refused_with_the_registrys_words():
    from transformers_fine_tuning.callbacks import EMACallback, SWACallback

    from tiny_models import tiny_model

    model = tiny_model("bert")
    with pytest.raises(ValueError) as refused:
        prepare_fine_tuning(model, [SWACallback(0.5), EMACallback(0.9)], OptimizerSetup())
    assert str(refused.value) == f"EMACallback(0.9) and SWACallback(0.5): {EXCLUSIVE['weight average']}"
