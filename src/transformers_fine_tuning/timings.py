"""Where a run's time goes: start-up, loading, tokenisation, training, each evaluation, writing.

A seed study is hundreds of short runs, so what one run spends outside training is paid hundreds of times;
``results.json``'s ``timings`` section measures it, phase by phase (:class:`Stopwatch`), and the study's summary
adds it up. ``startup_s`` is the time from the process's start (the kernel's record of it, on Linux) to the
job's first line — the interpreter and the imports; it is 0 for a run inside an already running process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["Stopwatch", "evaluation_runtimes", "process_age_s"]


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: ``/proc/self/stat``'s start time), ``None`` where unknown."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0.0, uptime - start_ticks / ticks)


class Stopwatch:
    """Laps of one run, in seconds: each :meth:`lap` is the time since the previous one (or since the stopwatch
    was made), added to its phase, so the phases cover the run without gaps.

    With ``since_process_start``, ``startup_s`` is the process's age when the stopwatch is made (see the module
    docstring); otherwise it is 0.
    """

    def __init__(self, *, since_process_start: bool = False) -> None:
        self._mark = time.perf_counter()
        self._before = (process_age_s() or 0.0) if since_process_start else 0.0
        self.phases: dict[str, float] = {"startup_s": self._before}

    def lap(self, phase: str) -> float:
        """Add the time since the previous lap to ``phase``; that time."""
        now = time.perf_counter()
        elapsed, self._mark = now - self._mark, now
        self.phases[phase] = self.phases.get(phase, 0.0) + elapsed
        return elapsed

    def total_s(self) -> float:
        """The phases' sum: the process's time (or the stopwatch's) up to the last lap."""
        return sum(self.phases.values())

    def move(self, seconds: float, source: str, target: str) -> None:
        """Count ``seconds`` of ``source`` as ``target`` instead (e.g. the evaluations inside training)."""
        seconds = min(seconds, self.phases.get(source, 0.0))
        self.phases[source] = self.phases.get(source, 0.0) - seconds
        self.phases[target] = self.phases.get(target, 0.0) + seconds


def evaluation_runtimes(log_history: list[dict], after_step: int = 0) -> list[float]:
    """The Trainer's own timing (``eval_<split>_runtime``) of each evaluation logged after ``after_step`` (a
    resumed run's log holds the evaluations of the run it resumed, which another process paid for)."""
    return [
        float(value)
        for entry in log_history
        if entry.get("step", 0) > after_step
        for key, value in entry.items()
        if key.startswith("eval_") and key.endswith("_runtime")
    ]
