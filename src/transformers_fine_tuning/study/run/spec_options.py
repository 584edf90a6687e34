"""A study file's seeds and optional keys, read and checked: the seed axes (``seeds``, ``data_seeds``,
``subset_seeds``, ``dropout_seeds``), ``prune``, ``restarts``, ``target_score``, ``until_decided`` and
``score``. :func:`.spec.spec_from_mapping` builds the study from them; :mod:`.spec` re-exports the public
names."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...restarts import Restarts
from ...results import PRUNING_TESTS

__all__ = [
    "SCORES",
    "SPENDING",
    "UntilDecided",
    "optional_keys",
    "parse_seeds",
    "seed_axes",
    "study_arguments",
]

# Set per cell only when the study varies them (subset_seeds, dropout_seeds); else the arguments may fix them.
_AXIS_ARGUMENTS = {"subset_seeds": "train_subset_seed", "dropout_seeds": "dropout_seed"}

SCORES = ("final", "best")
"""The scores a study can summarise: each run's final one, or its best evaluation during training (:mod:`..analysis.scores`)."""

SPENDING = ("obrien_fleming", "pocock")
"""The alpha-spending functions of ``until_decided`` (:func:`~..analysis.power.spending_boundaries`)."""


@dataclass(frozen=True)
class UntilDecided:
    """``until_decided`` of a study: seeds in rounds of ``round`` per recipe, at most the study's seeds, each
    comparison decided at its look's share of ``alpha`` under the ``spending`` function (:mod:`..analysis.sequential`)."""

    round: int
    alpha: float = 0.05
    spending: str = "obrien_fleming"

    def __post_init__(self) -> None:
        if self.round < 2:
            raise ValueError(
                f"until_decided needs round >= 2 runs a recipe (a test needs them), not {self.round}"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"until_decided alpha must be in (0, 1), not {self.alpha}")
        if self.spending not in SPENDING:
            raise ValueError(f"until_decided spending must be one of {list(SPENDING)}, not {self.spending!r}")


def parse_seeds(value: int | str | Iterable[int | str]) -> tuple[int, ...]:
    """Seeds from ``3``, ``"0-24"`` (inclusive), ``"0-4,10,12-13"`` or a list of those; order kept, no repeats.

    Raises:
        ValueError: an empty list, a malformed item, or a range whose end is below its start.
    """
    items: Iterable[int | str]
    if isinstance(value, bool):
        raise ValueError(f"seeds must be integers or ranges like '0-24', not {value!r}")
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    else:
        items = value
    seeds: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"seeds must be integers or ranges like '0-24', not {item!r}")
        if isinstance(item, int):
            seeds.append(item)
            continue
        text = str(item).strip()
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
        if match:
            start, stop = int(match.group(1)), int(match.group(2))
            if stop < start:
                raise ValueError(f"seed range {text!r} ends before it starts")
            seeds.extend(range(start, stop + 1))
        elif re.fullmatch(r"\d+", text):
            seeds.append(int(text))
        else:
            raise ValueError(
                f"cannot read seeds {text!r}: use integers, lists, or ranges like '0-24' or '0-4,10'"
            )
    if not seeds:
        raise ValueError("a study needs at least one seed")
    return tuple(dict.fromkeys(seeds))


def seed_axes(mapping: Mapping[str, Any]) -> dict[str, tuple[int, ...] | None]:
    """``data_seeds`` (``None``: "same", each run's data seed is its seed), ``subset_seeds`` and
    ``dropout_seeds`` (``None``: the axis is not varied), parsed."""
    data_seeds_value = mapping.get("data_seeds", "same")
    data_seeds = None if data_seeds_value in (None, "same") else parse_seeds(data_seeds_value)
    axes = {key: None if mapping.get(key) is None else parse_seeds(mapping[key]) for key in _AXIS_ARGUMENTS}
    return {"data_seeds": data_seeds, **axes}


def study_arguments(mapping: Mapping[str, Any], axes: Mapping[str, Any]) -> dict[str, Any]:
    """The study's ``arguments`` with ``prune`` added as the job's flag; an argument that a varied seed axis
    (``axes``, :func:`seed_axes`) sets per run is refused."""
    arguments = dict(mapping.get("arguments") or {})
    for key, argument in _AXIS_ARGUMENTS.items():
        if axes[key] is not None and argument in arguments:
            raise ValueError(f"`{key}` sets --{argument} per run: remove {argument} from `arguments`")
    prune = mapping.get("prune")
    if prune is not None:
        if prune not in PRUNING_TESTS:
            raise ValueError(f"prune must be one of {list(PRUNING_TESTS)}, not {prune!r}")
        arguments["prune"] = prune
    return arguments


def optional_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``restarts``, ``target_score``, ``until_decided`` and ``score``, checked, as :class:`.spec.StudySpec`'s
    keyword arguments."""
    return {
        "restarts": _restarts(mapping.get("restarts")),
        "target_score": None if mapping.get("target_score") is None else float(mapping["target_score"]),
        "until_decided": _until_decided(mapping.get("until_decided"), mapping.get("restarts")),
        "score": _score(mapping.get("score")),
    }


def _score(value: Any) -> str:
    score = "final" if value is None else str(value)
    if score not in SCORES:
        raise ValueError(
            f"score: {value!r} is not one of {', '.join(SCORES)} (a run's final score, or its best)"
        )
    return score


def _until_decided(value: Any, restarts: Any) -> UntilDecided | None:
    if value is None:
        return None
    if restarts is not None:
        raise ValueError(
            "until_decided and restarts both choose which seeds run: give one (restarts draws seeds until runs "
            "succeed, until_decided until the comparisons are decided)"
        )
    if not isinstance(value, Mapping) or set(value) - {"round", "alpha", "spending"} or "round" not in value:
        raise ValueError(
            f"until_decided is a mapping {{round: R, alpha: 0.05, spending: obrien_fleming}}, not {value!r}"
        )
    return UntilDecided(
        int(value["round"]), float(value.get("alpha", 0.05)), str(value.get("spending", "obrien_fleming"))
    )


def _restarts(value: Any) -> Restarts | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"successes", "max_runs"} or "successes" not in value:
        raise ValueError(f"restarts is a mapping {{successes: N, max_runs: M}}, not {value!r}")
    successes, max_runs = int(value["successes"]), int(value.get("max_runs", 10 * int(value["successes"])))
    if not 1 <= successes <= max_runs:
        raise ValueError(
            f"restarts needs 1 <= successes <= max_runs, not successes={successes}, max_runs={max_runs}"
        )
    return Restarts(successes, max_runs)
