"""The package's map (the docstring of ``transformers_fine_tuning``) names every module and subpackage it has, in
an order the imports keep: no module imports, at run time, from one listed below it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import transformers_fine_tuning

ROOT = Path(transformers_fine_tuning.__file__).parent


def _map_entries() -> list[str]:
    """The map's entries, top to bottom: ``name.py`` or ``name/`` at the start of an indented line."""
    return re.findall(r"^ {4}(\w+\.py|\w+/) ", transformers_fine_tuning.__doc__, flags=re.MULTILINE)


def _entry_of(module: str) -> str | None:
    """``transformers_fine_tuning.glue.loading`` → ``glue/``; ``transformers_fine_tuning.best`` → ``best.py``."""
    parts = module.split(".")
    if parts[0] != "transformers_fine_tuning" or len(parts) < 2:
        return None
    return f"{parts[1]}/" if (ROOT / parts[1]).is_dir() else f"{parts[1]}.py"


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _runtime_imports(source: str, package: list[str]) -> set[str]:
    """The modules a module of ``package`` with this source imports when it runs (imports under
    ``if TYPE_CHECKING:`` are for types only)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.update([module] if node.module else [f"{module}.{alias.name}" for alias in node.names])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def test_the_package_map_names_every_module():
    entries = {path.name for path in ROOT.glob("*.py") if path.name != "__init__.py"}
    entries |= {
        f"{path.name}/" for path in ROOT.iterdir() if path.is_dir() and (path / "__init__.py").is_file()
    }
    missing = sorted(entries - set(_map_entries()))
    assert not missing, f"add to the map in transformers_fine_tuning/__init__.py: {missing}"


def test_no_module_imports_from_one_below_it_in_the_map():
    order = {entry: rank for rank, entry in enumerate(_map_entries())}
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "__init__.py":
            continue
        own = _entry_of("transformers_fine_tuning." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        package = ["transformers_fine_tuning", *path.relative_to(ROOT).parent.parts]
        for module in _runtime_imports(path.read_text(), package):
            target = _entry_of(module)
            if target in order and target != own and order[target] > order[own]:
                upward.append(f"{path.relative_to(ROOT)} imports {module} (listed below it)")
    assert not upward, "reorder the map or the imports:\n" + "\n".join(sorted(upward))


STUDY_FLOW = ("run", "analysis", "report")
"""The study's subpackages in the order its data flows: the store's runs are analysed, the numbers rendered."""


def _against_the_flow(stage: str, source: str) -> list[str]:
    """The study modules a module of ``study/<stage>`` imports at run time that come later in the flow (or sit
    above it: the pipeline, the command line)."""
    allowed = STUDY_FLOW[: STUDY_FLOW.index(stage) + 1]
    return sorted(
        module
        for module in _runtime_imports(source, ["transformers_fine_tuning", "study", stage])
        if module.startswith("transformers_fine_tuning.study.") and module.split(".")[2] not in allowed
    )


def test_the_study_imports_only_along_its_flow():
    """``study/run`` imports nothing of ``analysis`` or ``report``, ``analysis`` nothing of ``report``."""
    against = [
        f"study/{stage}/{path.name} imports {module}"
        for stage in STUDY_FLOW
        for path in sorted((ROOT / "study" / stage).glob("*.py"))
        for module in _against_the_flow(stage, path.read_text())
    ]
    assert not against, "the study's data flows run → analysis → report:\n" + "\n".join(against)


def test_the_study_flow_check_sees_an_import_against_it():
    source = "from ..report.markdown import render\nfrom ..pipeline import run_study\nfrom .store import S\n"
    assert _against_the_flow("run", source) == [
        "transformers_fine_tuning.study.pipeline",
        "transformers_fine_tuning.study.report.markdown",
    ]
    assert _against_the_flow("report", source) == ["transformers_fine_tuning.study.pipeline"]


def test_the_import_check_sees_an_upward_import():
    """The check above can fail: relative imports are resolved, type-only ones left out."""
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..results import X\nfrom ..study import Y\n"
    imports = _runtime_imports(source, ["transformers_fine_tuning", "optim"])
    assert imports == {"typing", "transformers_fine_tuning.study"}
    assert _entry_of("transformers_fine_tuning.study") == "study/"
    assert _entry_of("transformers_fine_tuning.best") == "best.py"


def test_the_public_api_keeps_its_import_paths():
    """``AdamWL2SP`` and ``TrainerOptimizerInit`` from the package and from their historical module paths are the
    same objects (the Trainer's package was renamed from ``transformers/`` to ``trainer/``)."""
    from transformers_fine_tuning import AdamWL2SP, TrainerOptimizerInit, build_fine_tuning_optimizer
    from transformers_fine_tuning.optim.adamwl2sp import AdamWL2SP as from_optim
    from transformers_fine_tuning.trainer.trainer_optimizer_init import TrainerOptimizerInit as from_trainer
    from transformers_fine_tuning.transformers import build_fine_tuning_optimizer as old_builder
    from transformers_fine_tuning.transformers.trainer_optimizer_init import TrainerOptimizerInit as old_path

    assert AdamWL2SP is from_optim
    assert TrainerOptimizerInit is from_trainer is old_path
    assert build_fine_tuning_optimizer is old_builder


def test_no_module_over_500_lines_and_no_function_over_60():
    """Small modules with one job each: a module of the package holds at most 500 lines, a function (docstring
    included) at most 60."""
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 500:
            too_long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)
