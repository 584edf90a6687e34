"""Failure rates with their uncertainty, and what they mean for restarts.

A failed run scores at or below the best constant predictor; a seed study counts them per recipe, and the
counts are small (0 to a few of 10–20 runs), so the intervals here are those that behave at 0 and at n:

* :func:`clopper_pearson` — the failure rate k/n with its exact (Clopper & Pearson 1934) interval, from the
  binomial tails (``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``); it never under-covers.
* :func:`newcombe_difference` — the difference of two rates k1/n1 − k2/n2 with Newcombe's hybrid score
  interval (Newcombe 1998, "Interval estimation for the difference between independent proportions:
  comparison of eleven methods", Stat. Med. 17:873, method 10): with Wilson score intervals (l1, u1) and
  (l2, u2) of the two rates, d − √((p1 − l1)² + (u2 − p2)²) to d + √((u1 − p1)² + (p2 − l2)²). Unlike the
  Wald interval it is defined and sensible at 0/n and n/n, and its coverage is close to nominal for small
  samples (Newcombe's evaluation).
* :func:`success_within` — P(at least one of ``runs`` independent runs does not fail) = 1 − p^runs, p the
  failure rate, with the band of the Clopper–Pearson interval of p mapped through this decreasing function:
  the answer to "how many restarts do I need".
* :func:`runs_for_success` — the smallest number of runs that makes that probability reach a target, at the
  estimate of p and (conservatively) at its Clopper–Pearson upper bound.

No runs (n = 0) gives ``nan`` (or ``None``), never an exception.
"""

from __future__ import annotations

import math

from scipy import stats

from .effects import Interval

__all__ = ["clopper_pearson", "newcombe_difference", "runs_for_success", "success_within"]

NAN = float("nan")


def _check(k: int, n: int) -> None:
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, not k = {k}, n = {n}")


def _check_level(confidence_level: float) -> None:
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), not {confidence_level}")


def clopper_pearson(k: int, n: int, *, confidence_level: float = 0.95) -> Interval:
    """The rate k/n with its exact Clopper–Pearson interval; ``nan`` for n = 0.

    Raises:
        ValueError: k outside 0 … n, or a confidence level outside (0, 1).
    """
    _check(k, n)
    _check_level(confidence_level)
    if n == 0:
        return Interval(NAN, NAN, NAN)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence_level, method="exact")
    return Interval(k / n, float(ci.low), float(ci.high))


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of k/n (without continuity correction)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, *, confidence_level: float = 0.95) -> Interval:
    """k1/n1 − k2/n2 with Newcombe's (1998) hybrid score interval (method 10; module docstring); ``nan`` when
    either n is 0.

    Raises:
        ValueError: a count outside 0 … n, or a confidence level outside (0, 1).
    """
    _check(k1, n1)
    _check(k2, n2)
    _check_level(confidence_level)
    if n1 == 0 or n2 == 0:
        return Interval(NAN, NAN, NAN)
    z = float(stats.norm.ppf(1 - (1 - confidence_level) / 2))
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = _wilson(k1, n1, z), _wilson(k2, n2, z)
    d = p1 - p2
    return Interval(
        d,
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def success_within(failed: int, n: int, runs: int, *, confidence_level: float = 0.95) -> Interval:
    """P(at least one success in ``runs`` independent runs) = 1 − p^runs with p = failed/n, and its band: the
    Clopper–Pearson interval (low, high) of p mapped to (1 − high^runs, 1 − low^runs). ``nan`` for n = 0.

    Raises:
        ValueError: ``runs`` < 1, ``failed`` outside 0 … n, or a confidence level outside (0, 1).
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    rate = clopper_pearson(failed, n, confidence_level=confidence_level)
    if n == 0:
        return Interval(NAN, NAN, NAN)
    return Interval(1 - rate.estimate**runs, 1 - rate.high**runs, 1 - rate.low**runs)


def _runs_needed(p: float, probability: float) -> int | None:
    """The smallest r >= 1 with 1 − p^r >= probability (``None`` for p = 1)."""
    if p >= 1:
        return None
    if p <= 0:
        return 1
    runs = max(1, math.ceil(math.log1p(-probability) / math.log(p)))
    # guard the logarithms' rounding: step to the exact smallest r
    while 1 - p**runs < probability:
        runs += 1
    while runs > 1 and 1 - p ** (runs - 1) >= probability:
        runs -= 1
    return runs


def runs_for_success(
    failed: int, n: int, *, probability: float = 0.95, confidence_level: float = 0.95
) -> tuple[int | None, int | None]:
    """The smallest number of runs with P(at least one success) >= ``probability``: (at the estimate p =
    failed/n, at the Clopper–Pearson upper bound of p — the conservative count).

    ``None`` where no number of runs suffices (p, or its upper bound, is 1 — e.g. every run failed); 1 where p
    is 0. ``(None, None)`` for n = 0.

    Raises:
        ValueError: ``probability`` outside (0, 1), ``failed`` outside 0 … n, or a bad confidence level.
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), not {probability}")
    rate = clopper_pearson(failed, n, confidence_level=confidence_level)
    if n == 0:
        return None, None
    return _runs_needed(rate.estimate, probability), _runs_needed(rate.high, probability)
