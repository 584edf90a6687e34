"""Flags or a config file → the run's arguments: a recipe's values under explicit ones, unknown and removed names
refused with the closest known ones, and ``--xla_launch`` read before anything starts the XLA runtime."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from ..recipes import Recipe, load_recipe
from ..textfiles import read_mapping_file
from .fine_tuning import FineTuningArguments
from .model_and_data import DataArguments, ModelArguments
from .run import DiagnosticsArguments, RunArguments
from .training import FineTuneArguments, FineTuneTrainingArguments

_DATACLASSES = (
    ModelArguments,
    DataArguments,
    FineTuningArguments,
    DiagnosticsArguments,
    RunArguments,
    FineTuneTrainingArguments,
)


def _known_names() -> set[str]:
    return {f.name for cls in _DATACLASSES for f in fields(cls) if f.init}


_REMOVED = {"optimizer": "optim adamw_l2sp", "l2sp_novel": "l2sp_head_weight_decay"}
"""Names removed in 0.2.0 (deprecated in 0.1.0), with what replaces them."""


def _unknown(names: Iterable[str], what: str) -> str | None:
    """A message naming the unknown argument names, each with its closest known ones (or, for a removed name, its
    replacement); ``None`` if all known."""
    known = _known_names()
    accepted = known | {f"no_{name}" for name in known} | {"help"}  # HfArgumentParser's --no_<flag>
    unknown = [name for name in dict.fromkeys(names) if name not in accepted]
    if not unknown:
        return None
    shown = []
    for name in unknown:
        if name in _REMOVED:
            shown.append(f"{what}{name} (removed in 0.2.0: use {what}{_REMOVED[name]})")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=2)
        shown.append(
            f"{what}{name}" + (f" (did you mean {' or '.join(what + c for c in close)}?)" if close else "")
        )
    return f"unknown {'flag' if what else 'key'}(s) {', '.join(shown)}"


def _load_recipe(name: str | None) -> Recipe | None:
    if name is None:
        return None
    recipe = load_recipe(name)
    unknown = sorted(set(recipe.arguments) - _known_names())
    if unknown:
        raise ValueError(f"Recipe {recipe.name!r} sets unknown argument(s) {unknown}.")
    return recipe


def _is_config_file(argv: list[str]) -> bool:
    """Whether the arguments are one JSON or YAML config file instead of flags."""
    return len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml"))


def _config_file_values(path: Path) -> tuple[Recipe | None, dict[str, Any]]:
    """A config file's recipe and its values over the recipe's (the file's own keys win)."""
    values = read_mapping_file(path, "config file")
    recipe = _load_recipe(values.get("recipe"))
    return recipe, {**(recipe.arguments if recipe else {}), **values}


def parse_fine_tune_args(argv: list[str] | None = None) -> FineTuneArguments:
    """Parse flags, or a single JSON/YAML file, applying the recipe's values under explicit ones.

    Raises:
        ValueError: unknown recipe, unknown keys, conflicting fine-tuning options.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(_DATACLASSES, allow_abbrev=False)
    if _is_config_file(argv):
        path = Path(argv[0])
        recipe, merged = _config_file_values(path)
        unknown = _unknown(merged, "")
        if unknown:
            raise ValueError(f"{path}: {unknown}; every key must be a fine-tune flag name (see --help).")
        parsed = parser.parse_dict(merged)
    else:
        unknown = _unknown((token[2:].split("=", 1)[0] for token in argv if token.startswith("--")), "--")
        if unknown:
            raise ValueError(f"{unknown}; --help lists the flags.")
        peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        peek.add_argument("--recipe")
        recipe = _load_recipe(peek.parse_known_args(argv)[0].recipe)
        if recipe is not None:
            parser.set_defaults(**recipe.arguments)
        parsed = parser.parse_args_into_dataclasses(args=argv)
    arguments = FineTuneArguments(*parsed, recipe=recipe)
    fine_tuning, training = arguments.fine_tuning, arguments.training
    fine_tuning.check(training.adamw_l2sp)
    pull = training.learning_rate * fine_tuning.l2sp_pretrained
    if pull > 1 and not (fine_tuning.l2sp_coupled or fine_tuning.l2sp_selective):
        raise ValueError(
            f"--learning_rate {training.learning_rate:g} × --l2sp_pretrained {fine_tuning.l2sp_pretrained:g} = "
            f"{pull:g} > 1: the decoupled pull θ ← θ − lr·λ·(θ − θ₀) would overshoot the pretrained weights at every "
            "step. Lower --l2sp_pretrained (typically 0.01 to 1 at a learning rate near 2e-5), or add --l2sp_coupled."
        )
    return arguments


def xla_launch_requested(argv: list[str] | None = None) -> bool:
    """Whether the arguments (flags, config file or recipe) ask for ``--xla_launch``, read without building
    ``TrainingArguments``: building them sets up the device, which starts the XLA runtime, and
    ``torch_xla.launch`` refuses to start processes after that ("Runtime is already initialized").

    Arguments it cannot read give ``False``, for :func:`parse_fine_tune_args` to report.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if _is_config_file(argv):
            return bool(_config_file_values(Path(argv[0]))[1].get("xla_launch", False))
        parser = HfArgumentParser(RunArguments, add_help=False, exit_on_error=False, allow_abbrev=False)
        recipe = _load_recipe(parser.parse_known_args(argv)[0].recipe)
        if recipe is not None:
            parser.set_defaults(**recipe.arguments)
        return bool(parser.parse_known_args(argv)[0].xla_launch)
    except (OSError, ValueError, yaml.YAMLError, argparse.ArgumentError):
        return False
