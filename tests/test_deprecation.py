"""The old import paths: each deprecated one warns once, with its removal version and where its names live now,
and gives the very objects of its new path; the public paths import without a warning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def _warnings_on_import(module: str) -> list[str]:
    """The warnings a fresh interpreter shows when it imports ``module``, one ``Category: message`` per line."""
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        f"    import {module}\n"
        "print('\\n'.join(f'{w.category.__name__}: {w.message}' for w in caught "
        "if 'transformers_fine_tuning' in str(w.message)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("transformers_fine_tuning.glue", "transformers_fine_tuning.tasks"),
        ("transformers_fine_tuning.glue.export", "transformers_fine_tuning.tasks.glue.export"),
        ("transformers_fine_tuning.data", "transformers_fine_tuning.tasks"),
        ("transformers_fine_tuning.data_labels", "transformers_fine_tuning.tasks.labels"),
        ("transformers_fine_tuning.surgery", "transformers_fine_tuning.techniques"),
        ("transformers_fine_tuning.averaging", "transformers_fine_tuning.techniques"),
        ("transformers_fine_tuning.r3f", "transformers_fine_tuning.techniques.r3f"),
        ("transformers_fine_tuning.callbacks.base", "transformers_fine_tuning.techniques.base"),
        ("transformers_fine_tuning.callbacks.fine_tuning", "transformers_fine_tuning.callbacks"),
        ("transformers_fine_tuning.callbacks.stabilizers", "transformers_fine_tuning.callbacks"),
        ("transformers_fine_tuning.callbacks.unfreezing", "transformers_fine_tuning.callbacks"),
    ],
)
def test_a_deprecated_path_warns_with_its_removal_version_and_replacement(old: str, new: str) -> None:
    [warning] = _warnings_on_import(old)
    assert warning.startswith(f"FutureWarning: {old.rsplit('.export', 1)[0]} is deprecated")
    assert "removed in 0.3.0" in warning and new in warning


@pytest.mark.parametrize(
    "module",
    [
        "transformers_fine_tuning",
        "transformers_fine_tuning.transformers.trainer_optimizer_init",
        "transformers_fine_tuning.callbacks",
        "transformers_fine_tuning.fine_tune",
        "transformers_fine_tuning.study",
    ],
)
def test_the_public_paths_do_not_warn(module: str) -> None:
    """The package, the Trainer's former path and the callbacks' import path are public API; the job and the
    study import no deprecated path of their own."""
    assert _warnings_on_import(module) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("transformers_fine_tuning.r3f", "transformers_fine_tuning.techniques.r3f"),
        ("transformers_fine_tuning.callbacks.base", "transformers_fine_tuning.techniques.base"),
    ],
)
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_moved_module_s_old_path_is_the_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_old_technique_paths_give_the_same_objects() -> None:
    import transformers_fine_tuning.techniques as techniques
    from transformers_fine_tuning import averaging, callbacks, surgery
    from transformers_fine_tuning.callbacks import fine_tuning, stabilizers, unfreezing

    for module in (surgery, averaging, callbacks, fine_tuning, stabilizers, unfreezing):
        assert module.__all__, module.__name__
        for name in module.__all__:
            assert getattr(module, name) is getattr(techniques, name), f"{module.__name__}.{name}"
