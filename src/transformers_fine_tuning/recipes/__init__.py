"""Named fine-tuning recipes from the papers, shipped as data (YAML), not code.

A recipe is a set of argument values for the fine-tune job (fine-tuning options and ``TrainingArguments``
alike) with a description and the source it comes from. ``--recipe NAME`` takes one of the files beside this
module; ``--recipe path/to/file.yaml`` takes a user's own file of the same shape::

    description: what the recipe does and why
    source: the paper (section / equation) it comes from
    arguments:
      optim: adamw_l2sp
      l2sp_pretrained: 0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..textfiles import read_mapping_file

__all__ = ["RECIPES_DIR", "Recipe", "available_recipes", "load_recipe"]

RECIPES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Recipe:
    """A named set of argument values, with the description and source that justify it."""

    name: str
    description: str
    source: str
    arguments: dict[str, Any] = field(default_factory=dict)


def available_recipes() -> list[str]:
    """The names of the recipes shipped with the package."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a shipped recipe by name, or a recipe file by path.

    Raises:
        ValueError: the name is neither a shipped recipe nor an existing file (the message lists the shipped
            ones), or the file is not a mapping with an ``arguments`` mapping.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"Unknown recipe {str(name_or_path)!r}: the shipped recipes are {', '.join(available_recipes())}; "
            "or pass the path of a YAML file with `description`, `source` and `arguments`."
        )
    content = read_mapping_file(path, "recipe file")
    if not isinstance(content.get("arguments", {}), dict):
        raise ValueError(
            f"Recipe file {path} must be a mapping with an `arguments` mapping of argument values."
        )
    return Recipe(
        name=path.stem,
        description=str(content.get("description", "")).strip(),
        source=str(content.get("source", "")).strip(),
        arguments=dict(content.get("arguments") or {}),
    )
