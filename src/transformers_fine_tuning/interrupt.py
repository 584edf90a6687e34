"""Stopping a run on SIGTERM or SIGINT without losing it: a checkpoint at the next step boundary, then out.

SIGTERM is how preemptible TPU and spot machines are taken away (with seconds to minutes of grace), SIGINT is
Ctrl-C. Either, during training, asks :class:`InterruptCallback` to save a resumable checkpoint when the current
optimizer step ends and to stop there; the job then writes a ``results.json`` with ``status: "interrupted"``
and exits with 128 + the signal's number (143, 130), as a shell reports a process the signal ended. Started
again, the run resumes from that checkpoint (:mod:`.resume`). A second signal while the checkpoint is written
stops at once.

With several processes (``torchrun``), every rank must stop at the same step: the ranks agree at each step
boundary (an all-reduce of one flag), so a signal that reaches them at different moments still stops them
together.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import torch
from transformers import TrainerCallback

__all__ = ["SIGNALS", "InterruptCallback", "RunInterrupted", "checkpoint_on_signals"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal after saving its checkpoint; ``exit_status`` is what the process returns."""

    def __init__(self, signum: int, checkpoint_step: int | None) -> None:
        super().__init__(f"interrupted by signal {signum} at step {checkpoint_step}")
        self.signum = signum
        self.checkpoint_step = checkpoint_step

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class InterruptCallback(TrainerCallback):
    """Saves a checkpoint and stops training at the first step boundary after :meth:`request`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.stopped_at: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum

    def _agreed(self, args) -> bool:
        """Whether any rank was asked to stop (every rank reaches this at the same step)."""
        requested = self.signum is not None
        if torch.distributed.is_available() and torch.distributed.is_initialized() and args.world_size > 1:
            flag = torch.tensor([float(requested)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            requested = bool(flag.item())
            if requested and self.signum is None:
                self.signum = signal.SIGTERM
        return requested

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and self._agreed(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step


@contextmanager
def checkpoint_on_signals(*callbacks: InterruptCallback) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT ask each of ``callbacks`` (one per run the process trains; several
    for batched seeds) for a checkpoint and a stop instead of killing the process; a second signal raises
    ``KeyboardInterrupt`` at once. Off the main thread (where Python cannot install handlers) the block runs
    unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if any(callback.signum is not None for callback in callbacks):
            raise KeyboardInterrupt(f"signal {signum} again: stopping without waiting for the checkpoint")
        for callback in callbacks:
            callback.request(signum)

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
