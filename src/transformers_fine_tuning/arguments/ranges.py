"""Range checks of single values, refused in the user's terms when the arguments are parsed."""

from __future__ import annotations

from typing import Any


def check_ranges(*checks: tuple[str, Any, bool, str]) -> None:
    """Refuse the first ``(flag, value, ok, requirement)`` that is not ``ok``, in the user's terms:
    ``--learning_rate -1.0: must be >= 0``. Checked when the arguments are parsed, before anything is loaded."""
    for flag, value, ok, requirement in checks:
        if not ok:
            raise ValueError(f"{flag} {value}: must be {requirement}.")
