"""The package's map (the docstring of ``transformers_fine_tuning``) names every module and subpackage it has."""

from __future__ import annotations

from pathlib import Path

import transformers_fine_tuning


def test_the_package_map_names_every_module():
    root = Path(transformers_fine_tuning.__file__).parent
    entries = {path.name for path in root.glob("*.py") if path.name != "__init__.py"}
    entries |= {
        f"{path.name}/" for path in root.iterdir() if path.is_dir() and (path / "__init__.py").is_file()
    }
    missing = sorted(entry for entry in entries if entry not in transformers_fine_tuning.__doc__)
    assert not missing, f"add to the map in transformers_fine_tuning/__init__.py: {missing}"
