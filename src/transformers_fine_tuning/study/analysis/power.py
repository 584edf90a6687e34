"""How many seeds a decision needs, and a stopping rule for a study that looks at its results as runs finish.

A seed study that finds "no significant difference" with 5 runs a recipe has usually found nothing: the
question is how many runs would have told the observed effect apart. Two sample sizes, per recipe, for a
two-sided test at ``alpha`` with probability ``power`` of rejecting when the effect is real:

* :func:`seeds_for_failure_rates` — two failure rates p1, p2, by the normal approximation for two
  proportions with continuity correction (Fleiss, Levin & Paik 2003, "Statistical Methods for Rates and
  Proportions", 3rd ed., Eqs. 4.14 and 4.19; Fleiss, Tytun & Ury 1980):
  n' = [z_{1−α/2}·√(2·p̄·q̄) + z_{power}·√(p1·q1 + p2·q2)]² / (p1 − p2)², p̄ = (p1 + p2)/2, q = 1 − p, then
  n = n'/4·[1 + √(1 + 4/(n'·|p1 − p2|))]² (about n' + 2/|p1 − p2|), rounded up. The correction fits the
  continuity-corrected chi-square test, and so approximately Fisher's exact test, which the study uses (at
  0.1 vs 0.5 it gives 25 runs, where Fisher's test has exact power 0.83); n' alone is close to Cohen's arcsine
  formula (statsmodels' ``NormalIndPower`` with effect size h) for rates away from 0 and 1. E.g. 0.6 vs 0.8:
  91 runs a recipe.
* :func:`seeds_for_shift` — P(X > Y) = ``superiority`` for the Mann–Whitney test, Noether's (1987, "Sample
  size determination for some common nonparametric tests", JASA 82:645) formula for equal groups: total
  N = (z_{1−α/2} + z_{power})² / (3·(p − ½)²), N/2 per recipe rounded up.

And for a study that stops early when its answer is clear (sequential mode), :func:`spending_boundaries`:
the Lan–DeMets (1983, "Discrete sequential boundaries for clinical trials", Biometrika 70:659)
alpha-spending functions, O'Brien–Fleming-type α(t) = 2 − 2Φ(z_{1−α/2}/√t) (spends almost nothing early)
or Pocock-type α(t) = α·ln(1 + (e − 1)·t) (spends evenly), at the information fractions t_k = runs at look k
/ the most runs a recipe may get. Look k may stop the study when its p-value is <= the *increment*
α(t_k) − α(t_{k−1}). The increments sum to α(t_K) <= α, so by the union bound the chance of any false stop
is at most α **whatever the correlation between the looks** — conservative (Lan–DeMets' exact boundaries
use that correlation to spend exactly α; the union bound needs no model of it, and the Mann–Whitney p-values
of a study are not the Brownian motion those boundaries assume).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from scipy import stats

__all__ = ["SPENDING_FUNCTIONS", "seeds_for_failure_rates", "seeds_for_shift", "spending_boundaries"]

SPENDING_FUNCTIONS = ("obrien_fleming", "pocock")


def _check(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), not {alpha} and {power}")
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def seeds_for_failure_rates(p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Runs per recipe for a two-sided test at ``alpha`` to tell failure rates ``p1`` and ``p2`` apart with
    probability ``power``: Fleiss' normal approximation with continuity correction (module docstring).

    ``None`` when p1 == p2 (or either is ``nan``): there is nothing to tell apart.

    Raises:
        ValueError: a rate outside [0, 1], or ``alpha``/``power`` outside (0, 1).
    """
    z_alpha, z_power = _check(alpha, power)
    if math.isnan(p1) or math.isnan(p2) or p1 == p2:
        return None
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"rates must be in [0, 1], not {p1} and {p2}")
    mean = (p1 + p2) / 2
    delta = abs(p1 - p2)
    uncorrected = (
        z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / delta**2
    corrected = uncorrected / 4 * (1 + math.sqrt(1 + 4 / (uncorrected * delta))) ** 2
    return math.ceil(corrected - 1e-9)


def seeds_for_shift(superiority: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Runs per recipe for a two-sided Mann–Whitney test at ``alpha`` to detect P(X > Y) = ``superiority``
    with probability ``power``: Noether's (1987) N = (z_{1−α/2} + z_power)² / (3·(p − ½)²) runs in all, N/2
    per recipe rounded up. ``None`` at p = ½ (or ``nan``): no shift to detect.

    Raises:
        ValueError: ``superiority`` outside [0, 1], or ``alpha``/``power`` outside (0, 1).
    """
    z_alpha, z_power = _check(alpha, power)
    if math.isnan(superiority) or superiority == 0.5:
        return None
    if not 0 <= superiority <= 1:
        raise ValueError(f"superiority must be in [0, 1], not {superiority}")
    total = (z_alpha + z_power) ** 2 / (3 * (superiority - 0.5) ** 2)
    return math.ceil(total / 2 - 1e-9)


def _spent(t: float, alpha: float, kind: str) -> float:
    """α(t), the type-I error spent by information fraction t (0 at t = 0, alpha at t = 1)."""
    if t <= 0:
        return 0.0
    if kind == "obrien_fleming":
        return float(2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / math.sqrt(t)))
    if kind == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    raise ValueError(f"kind must be one of {SPENDING_FUNCTIONS}, not {kind!r}")


def spending_boundaries(
    looks: Sequence[int], max_runs: int, *, alpha: float = 0.05, kind: str = "obrien_fleming"
) -> list[float]:
    """The p-value thresholds of a sequential study: at look k (``looks[k]`` runs a recipe of at most
    ``max_runs``), the incremental alpha α(t_k) − α(t_{k−1}) of the Lan–DeMets spending function ``kind``
    ("obrien_fleming" or "pocock"), t_k = looks[k]/max_runs. Stop at the first look whose p-value is <= its
    threshold; the overall type-I error is at most ``alpha`` (the union bound, module docstring). The
    thresholds sum to ``alpha`` when the last look is at ``max_runs``, to less when the study may stop sooner.

    Raises:
        ValueError: looks not strictly increasing in 1 … ``max_runs``, ``alpha`` outside (0, 1), an unknown
            ``kind``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    if kind not in SPENDING_FUNCTIONS:
        raise ValueError(f"kind must be one of {SPENDING_FUNCTIONS}, not {kind!r}")
    counts = [int(look) for look in looks]
    if (
        not counts
        or counts[0] < 1
        or counts[-1] > max_runs
        or any(b <= a for a, b in itertools.pairwise(counts))
    ):
        raise ValueError(f"looks must increase strictly within 1 … {max_runs}, not {list(looks)}")
    spent = [_spent(look / max_runs, alpha, kind) for look in counts]
    return [b - a for a, b in itertools.pairwise([0.0, *spent])]
