"""The warning an old import path gives: deprecated in 0.2.0, removed in 0.3.0, and where the names live now."""

from __future__ import annotations

import warnings

__all__ = ["REMOVED_IN", "warn_moved"]

REMOVED_IN = "0.3.0"
"""The release that removes the import paths deprecated in 0.2.0."""


def warn_moved(old: str, new: str) -> None:
    """Warn, with a ``FutureWarning`` pointing at the importing line, that module ``old`` is deprecated and will
    be removed in :data:`REMOVED_IN`, and that its names are imported from ``new`` now. Call it from the old
    module's body."""
    warnings.warn(
        f"{old} is deprecated and will be removed in {REMOVED_IN}: import from {new} instead",
        FutureWarning,
        stacklevel=3,
    )
