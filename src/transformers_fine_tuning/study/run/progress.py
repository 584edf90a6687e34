"""The progress line of a long study: runs done out of all, failed runs and errors so far, time left.

One plain line per change (not a redrawn bar), so that it reads the same in a terminal, in ``nohup``'s
``nohup.out`` and in a cluster job's log::

    [rte-recipes] 37/100 runs done · 4 failed runs · 1 error · 2 running · 1:02:11 elapsed · about 1:45:00 left

The time left is, once every worker has finished a run in this invocation, the throughput of this invocation
(runs finished per second of wall time, which accounts for parallel workers and their real speed) applied to
the runs still to do; before that, the mean wall time of the completed runs times the runs left, divided by
the number of workers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from .store import StoreCounts

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1:02:05"``; days are written out (``"2 days, 3:00:00"``)."""
    seconds = max(0, round(seconds))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{days} day{'s' if days > 1 else ''}, {clock}" if days else clock


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Progress:
    """Prints the progress line of a study whenever the store's counts change.

    Args:
        name: the study's name, the line's prefix.
        slots: how many runs execute at once (workers); refines the first time estimate.
        stream: where to print (default: standard output).
        clock: seconds, monotonic (a parameter so that tests control time).
    """

    def __init__(
        self,
        name: str,
        *,
        slots: int = 1,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.slots, self.stream, self.clock = name, slots, stream, clock
        self._start_time = clock()
        self._done_at_start = 0
        self._last: StoreCounts | None = None

    def start(self, counts: StoreCounts) -> None:
        """Begin timing, with the store's state before this invocation runs anything."""
        self._start_time = self.clock()
        self._done_at_start = counts.done
        self._last = None
        self.update(counts)

    def seconds_left(self, counts: StoreCounts) -> float | None:
        """Estimated seconds until every pending and running run is done; ``None`` when unknown."""
        remaining = counts.pending + counts.running
        if remaining == 0:
            return 0.0
        finished_here = counts.done - self._done_at_start
        elapsed = self.clock() - self._start_time
        if finished_here >= self.slots and elapsed > 0:
            return elapsed / finished_here * remaining
        if counts.mean_wall_time_s:
            return counts.mean_wall_time_s * remaining / max(1, min(self.slots, remaining))
        if finished_here > 0 and elapsed > 0:
            return elapsed / finished_here * remaining
        return None

    def line(self, counts: StoreCounts) -> str:
        """The progress line for ``counts``."""
        parts = [
            f"{counts.done}/{counts.total} runs done",
            _plural(counts.failed_runs, "failed run"),
        ]
        errors = counts.error + counts.crashed
        if errors:
            parts.append(_plural(errors, "error"))
        if counts.running:
            parts.append(f"{counts.running} running")
        parts.append(f"{format_duration(self.clock() - self._start_time)} elapsed")
        left = self.seconds_left(counts)
        if counts.pending + counts.running:
            parts.append("time left unknown" if left is None else f"about {format_duration(left)} left")
        return f"[{self.name}] " + " · ".join(parts)

    def update(self, counts: StoreCounts) -> None:
        """Print the line if the counts changed since the last one printed."""
        if counts != self._last:
            self._last = counts
            print(self.line(counts), file=self.stream or sys.stdout, flush=True)
