"""What a seed study is: a YAML/JSON file (or flags) turned into a grid of fine-tune runs.

A study is tasks × recipes × seeds: every cell is one run of the fine-tune job with the recipe's arguments,
the study's shared arguments and the cell's seeds. The file::

    name: rte-recipes                  # default: the file's name without extension
    output_dir: runs/studies/rte-recipes   # default: runs/studies/<name>; the store, runs, table and plots
    tasks: [rte]                       # GLUE task names, or {name, task_name, arguments} mappings; a task
                                       # of your own data: {name: sentiment, arguments: {train_file: ...,
                                       # validation_file: ..., text_column: ..., label_column: ...}}
    recipes: [devlin2019, mosbach2021, llrd, l2sp]   # shipped names, recipe files, or
                                       # {name, recipe, arguments} mappings for variants
    seeds: 0-24                        # --seed: the new head's initialisation (lists, "0-4,10", ranges)
    data_seeds: same                   # --data_seed: "same" (= seed, the default) or seeds as above,
                                       # crossed with `seeds`
    dropout_seeds: 0-4                 # optional: --dropout_seed crossed with the others (default: = seed)
    subset_seeds: [0, 1]               # optional: --train_subset_seed crossed with the others (with
                                       # max_train_samples; default: the first N examples)
    baseline: devlin2019               # the recipe the others are tested against (default: the first)
    prune: dev                         # optional: stop runs an early test flags (loss, dev, both; default off)
    restarts: {successes: 1, max_runs: 10}   # optional: per task × recipe, draw seeds in order until this
                                       # many runs did not fail, at most max_runs runs
    target_score: 0.65                 # optional: the summary says how many runs reach it (expected best)
    score: best                        # optional: summarise each run's best evaluation, not its final one
    until_decided: {round: 4}          # optional: seeds in rounds of 4 a recipe until every comparison with
                                       # the baseline is decided (alpha spending), at most `seeds`
    arguments:                         # fine-tune flags shared by every run
      model_name_or_path: albert-base-v2
      data_dir: ../shared/glue

Precedence, lowest first: the recipe file, the study's ``arguments``, the task's ``arguments``, the recipe
entry's ``arguments``, then what the study sets per cell (task, seeds, output directory). A task that names
its own data source (``data_dir``, ``train_file``/``validation_file``, ``dataset_name``, ...) replaces the
study's source instead of clashing with it, so GLUE tasks and tasks of your own data mix in one study. Relative paths are
relative to the directory the command runs from, as for the fine-tune job; they are made absolute here so that
workers with another working directory (Ray) find the same files.

Each cell has a stable, readable run id, ``<task>/<recipe>/seed<S>-data<D>`` (``-subset<K>``, ``-dropout<M>``
when those axes are given), which is also where its
``results.json`` lives under ``<output_dir>/runs/``, and a hash of its configuration, so that a changed study
file is noticed instead of silently mixing runs of two configurations.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...recipes import load_recipe
from ...restarts import Restarts
from ...tasks import DATA_SOURCE_ARGUMENTS, check_task_source, get_task, is_glue_task
from ...textfiles import read_mapping_file
from .spec_options import (
    SCORES,
    SPENDING,
    UntilDecided,
    optional_keys,
    parse_seeds,
    seed_axes,
    study_arguments,
)

__all__ = [
    "DEFAULT_ARGUMENTS",
    "SCORES",
    "SPENDING",
    "RecipeEntry",
    "Restarts",
    "RunCell",
    "StudySpec",
    "TaskEntry",
    "UntilDecided",
    "arguments_to_flags",
    "canonical_arguments",
    "config_hash",
    "load_spec",
    "parse_seeds",
    "spec_from_mapping",
]

STORE_FILE = "study.sqlite"
TOKENIZED_DIR = "tokenized"
"""Beside the store: the tokenised data the study's runs share (safe to delete; the next run re-creates it)."""
COMPILE_CACHE_DIR = "compile-cache"
"""Beside the store: ``torch.compile``'s cache, shared by the study's runs (safe to delete)."""
DEFAULT_ARGUMENTS: dict[str, Any] = {"disable_tqdm": True}
"""Flags every study run gets unless the study sets them: progress bars only clutter a study's logs."""

# Set per cell by the study; a study file that sets them would be silently overridden.
_RESERVED = ("output_dir", "seed", "data_seed", "task_name", "recipe", "overwrite_results")
# Arguments that are paths: made absolute. Model and tokenizer only when they exist locally (else Hub ids).
_PATH_ARGUMENTS = ("data_dir", "train_file", "validation_file", "cache_dir")
_MAYBE_PATH_ARGUMENTS = ("model_name_or_path", "tokenizer_name", "dataset_name")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_KNOWN_KEYS = {
    "name",
    "output_dir",
    "tasks",
    "recipes",
    "seeds",
    "data_seeds",
    "subset_seeds",
    "dropout_seeds",
    "baseline",
    "arguments",
    "prune",
    "restarts",
    "target_score",
    "until_decided",
    "score",
}


@dataclass(frozen=True)
class TaskEntry:
    """A task of the study: its label in tables and paths, the task it trains (a GLUE task's name, or the name
    of a task of your own data, whose data its arguments give), its own arguments."""

    name: str
    task_name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipeEntry:
    """A recipe of the study: its label, the recipe it loads (shipped name or absolute path), overrides."""

    name: str
    recipe: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunCell:
    """One cell of the grid: everything needed to start, recognise and place one fine-tune run.

    Attributes:
        run_id: ``<task>/<recipe>/seed<S>-data<D>[-subset<K>][-dropout<M>]``, stable across invocations.
        position: the cell's place in the execution order (seeds outermost, so that a study stopped
            half-way has about as many seeds for every recipe).
        argv: the fine-tune job's arguments, without the output directory.
        config_hash: a hash of the arguments (as flag → values, whatever their order) and of the recipe
            file's values (:func:`config_hash`).
        legacy_hash: the order-sensitive hash that stores written before it used (to recognise their runs).

    ``same_config(hash)`` says whether a stored hash is this configuration's.
        output_dir: the run's own directory, where ``results.json`` is written.
    """

    run_id: str
    position: int
    task: str
    recipe: str
    seed: int
    data_seed: int
    argv: tuple[str, ...]
    config_hash: str
    output_dir: str
    subset_seed: int | None = None
    dropout_seed: int | None = None
    legacy_hash: str = field(default="", compare=False)

    def same_config(self, stored_hash: str | None) -> bool:
        """Whether ``stored_hash`` (a store's row, a run directory's marker) is this configuration's."""
        return stored_hash is not None and stored_hash in (
            self.config_hash,
            self.legacy_hash or self.config_hash,
        )

    def fine_tune_argv(self) -> list[str]:
        """The complete argument list of this run's fine-tune job."""
        # A crashed attempt may have left files behind; results.json is only written by a finished run,
        # and the runner ingests such a file instead of re-running, so replacing is safe here.
        return [*self.argv, "--output_dir", self.output_dir, "--overwrite_results", "true"]


@dataclass(frozen=True)
class StudySpec:
    """A parsed study: the grid's axes, the shared arguments and where everything is written."""

    name: str
    output_dir: Path
    tasks: tuple[TaskEntry, ...]
    recipes: tuple[RecipeEntry, ...]
    seeds: tuple[int, ...]
    data_seeds: tuple[int, ...] | None
    baseline: str
    arguments: dict[str, Any] = field(default_factory=dict)
    subset_seeds: tuple[int, ...] | None = None
    dropout_seeds: tuple[int, ...] | None = None
    restarts: Restarts | None = None
    target_score: float | None = None
    until_decided: UntilDecided | None = None
    score: str = "final"

    @property
    def store_path(self) -> Path:
        """The study's SQLite result store."""
        return self.output_dir / STORE_FILE

    def seed_tuples(self) -> list[tuple[int, int, int | None, int | None]]:
        """(seed, data_seed, subset_seed, dropout_seed) of every cell of one task × recipe, in execution order
        (``None``: the axis is not varied)."""
        data = [None] if self.data_seeds is None else list(self.data_seeds)
        subsets = [None] if self.subset_seeds is None else list(self.subset_seeds)
        dropouts = [None] if self.dropout_seeds is None else list(self.dropout_seeds)
        return [
            (seed, seed if data_seed is None else data_seed, subset, dropout)
            for seed in self.seeds
            for data_seed in data
            for subset in subsets
            for dropout in dropouts
        ]

    def cells(self) -> list[RunCell]:
        """Every run of the study, seeds outermost so that partial studies stay balanced across recipes (with
        ``restarts``: the pool the seeds are drawn from, in order)."""
        recipe_values = {entry.name: load_recipe(entry.recipe).arguments for entry in self.recipes}
        cells = []
        for seed, data_seed, subset_seed, dropout_seed in self.seed_tuples():
            for task in self.tasks:
                for recipe in self.recipes:
                    argv = (
                        "--recipe",
                        recipe.recipe,
                        *arguments_to_flags(_shared_arguments(task, {**DEFAULT_ARGUMENTS, **self.arguments})),
                        *arguments_to_flags(task.arguments),
                        *arguments_to_flags(recipe.arguments),
                        "--task_name",
                        task.task_name,
                        "--seed",
                        str(seed),
                        "--data_seed",
                        str(data_seed),
                        *([] if subset_seed is None else ["--train_subset_seed", str(subset_seed)]),
                        *([] if dropout_seed is None else ["--dropout_seed", str(dropout_seed)]),
                    )
                    digest = config_hash(argv, recipe_values[recipe.name])
                    run_id = f"{task.name}/{recipe.name}/seed{seed}-data{data_seed}" + "".join(
                        f"-{axis}{value}"
                        for axis, value in (("subset", subset_seed), ("dropout", dropout_seed))
                        if value is not None
                    )
                    cells.append(
                        RunCell(
                            run_id=run_id,
                            position=len(cells),
                            task=task.name,
                            recipe=recipe.name,
                            seed=seed,
                            data_seed=data_seed,
                            argv=argv,
                            config_hash=digest,
                            output_dir=str(self.output_dir / "runs" / run_id),
                            subset_seed=subset_seed,
                            dropout_seed=dropout_seed,
                            legacy_hash=_hash({"argv": argv, "recipe": recipe_values[recipe.name]}),
                        )
                    )
        return cells

    def to_dict(self) -> dict[str, Any]:
        """The study as plain data (stored with the results, so that a store explains itself)."""
        return {
            "name": self.name,
            "output_dir": str(self.output_dir),
            "tasks": [vars(task) for task in self.tasks],
            "recipes": [vars(recipe) for recipe in self.recipes],
            "seeds": list(self.seeds),
            "data_seeds": "same" if self.data_seeds is None else list(self.data_seeds),
            "subset_seeds": None if self.subset_seeds is None else list(self.subset_seeds),
            "dropout_seeds": None if self.dropout_seeds is None else list(self.dropout_seeds),
            "baseline": self.baseline,
            "arguments": self.arguments,
            "restarts": None if self.restarts is None else vars(self.restarts),
            "target_score": self.target_score,
            "until_decided": None if self.until_decided is None else vars(self.until_decided),
            "score": self.score,
        }


def _hash(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def canonical_arguments(argv: Iterable[str]) -> dict[str, list[str]]:
    """``["--b", "1", "--a", "x", "--b", "2"]`` -> ``{"a": ["x"], "b": ["2"]}``: each flag's values, the last
    given winning (as argparse reads them), whatever the order the study file listed them in."""
    flags: dict[str, list[str]] = {}
    current: str | None = None
    for token in argv:
        if token.startswith("--"):
            current = token[2:]
            flags[current] = []
        elif current is not None:
            flags[current].append(token)
    return dict(sorted(flags.items()))


def config_hash(argv: Iterable[str], recipe_values: Mapping[str, Any]) -> str:
    """The configuration of a run: its arguments (order does not matter) and its recipe file's values."""
    return _hash({"arguments": canonical_arguments(argv), "recipe": dict(recipe_values)})


def arguments_to_flags(arguments: Mapping[str, Any]) -> list[str]:
    """``{"max_seq_length": 128, "fp16": True}`` -> ``["--max_seq_length", "128", "--fp16", "true"]``.

    Booleans are written ``true``/``false`` (``HfArgumentParser`` reads both), lists as several values after
    one flag, mappings as JSON; ``None`` leaves the flag out (the default applies).
    """
    flags: list[str] = []
    for key, value in arguments.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, bool):
            flags.append("true" if value else "false")
        elif isinstance(value, (list, tuple)):
            flags.extend(str(item) for item in value)
        elif isinstance(value, Mapping):
            flags.append(json.dumps(value))
        else:
            flags.append(str(value))
    return flags


def _absolute_paths(arguments: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check the keys and make the path arguments absolute (relative to the current directory)."""
    if not isinstance(arguments, Mapping):
        raise ValueError(f"{where}: `arguments` must be a mapping of fine-tune flag names to values")
    reserved = sorted(set(arguments) & set(_RESERVED))
    if reserved:
        raise ValueError(
            f"{where}: {reserved} are set per run by the study (tasks, recipes, seeds, output_dir); "
            "remove them from `arguments`"
        )
    resolved = dict(arguments)
    for key in _PATH_ARGUMENTS:
        if isinstance(resolved.get(key), str):
            resolved[key] = str(Path(resolved[key]).expanduser().resolve())
    for key in _MAYBE_PATH_ARGUMENTS:
        value = resolved.get(key)
        if isinstance(value, str) and Path(value).expanduser().exists():
            resolved[key] = str(Path(value).expanduser().resolve())
    return resolved


def _label(name: str, what: str) -> str:
    if not _LABEL.match(name):
        raise ValueError(
            f"{what} name {name!r} is used in run ids and paths: use letters, digits and . _ + - only"
        )
    return name


def _task_entry(entry: str | Mapping[str, Any]) -> TaskEntry:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise ValueError(
            "a task is a GLUE task name, or a mapping with `name` (and `task_name`, `arguments`: a task of your "
            f"own data gives its data there), not {entry!r}"
        )
    unknown = sorted(set(entry) - {"name", "task_name", "arguments"})
    if unknown:
        raise ValueError(f"task {entry['name']!r}: unknown key(s) {unknown}; use name, task_name, arguments")
    name = _label(str(entry["name"]), "task")
    task_name = str(entry.get("task_name", name))
    if is_glue_task(task_name):
        task_name = get_task(task_name).name  # GLUE's own spelling: SST-2 -> sst2
    return TaskEntry(name, task_name, _absolute_paths(entry.get("arguments") or {}, f"task {name!r}"))


def _shared_arguments(task: TaskEntry, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The study's shared ``arguments`` as ``task`` gets them: when the task names a data source of its own,
    the study's source arguments it does not set are left out — sources exclude each other, so the task's
    replaces the study's (e.g. a study's GLUE ``data_dir`` and a task's own ``train_file``)."""
    if not set(task.arguments) & set(DATA_SOURCE_ARGUMENTS):
        return dict(arguments)
    return {
        key: value
        for key, value in arguments.items()
        if key not in DATA_SOURCE_ARGUMENTS or key in task.arguments
    }


def _check_task_data(task: TaskEntry, arguments: Mapping[str, Any]) -> None:
    """A task's data arguments fit it (see ``check_task_source``): unknown names and sources fail here."""
    merged = {**_shared_arguments(task, arguments), **task.arguments}
    try:
        check_task_source(task.task_name, [key for key, value in merged.items() if value is not None])
    except ValueError as error:
        raise ValueError(f"task {task.name!r}: {error}") from None


def _recipe_entry(entry: str | Mapping[str, Any]) -> RecipeEntry:
    if isinstance(entry, str):
        entry = {"recipe": entry}
    if not isinstance(entry, Mapping) or not ({"name", "recipe"} & set(entry)):
        raise ValueError(
            f"a recipe is a name, a recipe file, or a mapping with `recipe`/`name`, not {entry!r}"
        )
    unknown = sorted(set(entry) - {"name", "recipe", "arguments"})
    if unknown:
        raise ValueError(f"recipe entry {entry}: unknown key(s) {unknown}; use name, recipe, arguments")
    reference = str(entry.get("recipe", entry.get("name")))
    load_recipe(reference)  # unknown recipes fail here, listing the shipped ones
    path = Path(reference).expanduser()
    if path.is_file():
        reference = str(path.resolve())
    name = _label(str(entry.get("name", Path(reference).stem)), "recipe")
    return RecipeEntry(name, reference, _absolute_paths(entry.get("arguments") or {}, f"recipe {name!r}"))


def spec_from_mapping(mapping: Mapping[str, Any], *, default_name: str = "study") -> StudySpec:
    """Build a :class:`StudySpec` from the file's (or the flags') values; see the module docstring.

    Raises:
        ValueError: unknown keys, tasks or recipes, malformed seeds, duplicate labels, reserved arguments,
            a baseline that is not one of the recipes.
    """
    unknown = sorted(set(mapping) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"unknown study key(s) {unknown}; the keys are {sorted(_KNOWN_KEYS)}")
    for key in ("tasks", "recipes", "seeds"):
        if mapping.get(key) in (None, [], ""):
            raise ValueError(f"a study needs `{key}`")
    tasks, recipes = _entries(mapping)
    axes = seed_axes(mapping)
    arguments = study_arguments(mapping, axes)
    name = _label(str(mapping.get("name") or default_name), "study")
    baseline = str(mapping.get("baseline") or recipes[0].name)
    if baseline not in {recipe.name for recipe in recipes}:
        raise ValueError(
            f"baseline {baseline!r} is not one of the study's recipes {[recipe.name for recipe in recipes]}"
        )
    output_dir = Path(mapping.get("output_dir") or Path("runs") / "studies" / name).expanduser().resolve()
    shared = _absolute_paths(arguments, "study")
    for task in tasks:
        _check_task_data(task, shared)
    return StudySpec(
        name=name,
        output_dir=output_dir,
        tasks=tasks,
        recipes=recipes,
        seeds=parse_seeds(mapping["seeds"]),
        baseline=baseline,
        arguments=shared,
        **axes,
        **optional_keys(mapping),
    )


def _entries(mapping: Mapping[str, Any]) -> tuple[tuple[TaskEntry, ...], tuple[RecipeEntry, ...]]:
    """The study's tasks and recipes (a single name or a list), each label used once."""
    tasks_value = mapping["tasks"]
    recipes_value = mapping["recipes"]
    tasks = tuple(
        _task_entry(entry) for entry in ([tasks_value] if isinstance(tasks_value, str) else tasks_value)
    )
    recipes = tuple(
        _recipe_entry(entry)
        for entry in ([recipes_value] if isinstance(recipes_value, str) else recipes_value)
    )
    for what, entries in (("task", tasks), ("recipe", recipes)):
        names = [entry.name for entry in entries]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{what} name(s) {repeated} appear twice; give variants their own `name`")
    return tasks, recipes


def load_spec(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read a study file (YAML or JSON) and apply ``overrides`` (e.g. from flags) on top of it.

    ``overrides`` replaces top-level keys, except ``arguments``, whose keys are merged into the file's.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a mapping, or the study is invalid (see :func:`spec_from_mapping`).
    """
    values: dict[str, Any] = {}
    default_name = "study"
    if path is not None:
        path = Path(path)
        values = read_mapping_file(path, "study file")
        default_name = path.stem
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "arguments":
            values["arguments"] = {**(values.get("arguments") or {}), **value}
        else:
            values[key] = value
    return spec_from_mapping(values, default_name=default_name)
