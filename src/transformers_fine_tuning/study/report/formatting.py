"""How the study's words print a number: the verdict (:mod:`.verdict`) and the tables (:mod:`.markdown`) share
these, so a value reads the same in both. An undefined value (``None``, NaN) prints as "–"."""

from __future__ import annotations

import math

__all__ = ["band", "number", "p_value"]


def number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals."""
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def p_value(value: float | None) -> str:
    """A p-value: two significant digits, scientific below 0.001."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def band(low: float, high: float, digits: int = 4) -> str:
    """An interval as ``[low, high]``."""
    return "–" if math.isnan(low) else f"[{number(low, digits)}, {number(high, digits)}]"
