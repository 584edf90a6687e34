"""Several seeds of one fine-tune job trained together, each ending in its own ``results.json``.

    tft-fine-tune-seeds --seeds 0 1 2 3 --output_dir runs/rte [the job's flags]   # runs/rte/seed-<k>
    python -m transformers_fine_tuning.batched --seeds 0 1 2 3 ...                 # the same command

Each seed is the fine-tune job's own run (:mod:`..fine_tune`: ``prepare``, then ``run`` in a thread of its
own), so its data order, head initialisation, evaluation, checkpoints and ``results.json`` are its solo run's;
only the training forward and backward are computed for all seeds at once (:class:`.group.SeedGroup`). With
dropout off, a seed's losses and weights equal its solo run's within float tolerance; with dropout on, its
masks come from the group's own stream, so a group reruns identically but a seed's masks are not its solo
run's.

What the batched step cannot do is refused before any training, with the reason (:func:`unbatchable`):
techniques that change the model's forward or its weights outside the optimizer (Mixout, R3F, weight
averaging, WiSE-FT, NoisyTune, LP-FT and gradual unfreezing, roll-back), ``--dropout_seed``, restarts,
several processes or an XLA device, activation checkpointing, gradient accumulation, label smoothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.utils import is_torch_xla_available

from ..arguments import FineTuneArguments, parse_fine_tune_args
from ..diagnostics import (
    DevFailureCallback,
    EarlyFailureCallback,
    GradNormCallback,
    LossSpikeCallback,
    NonFiniteGuardCallback,
)
from ..evaluation import PredictionRecorder
from ..fine_tune import Setup, prepare, run
from ..interrupt import InterruptCallback, RunInterrupted, checkpoint_on_signals
from ..results import RunResults, write_results
from ..techniques import L2SPCallback, LLRDCallback, ReinitCallback
from ..trainer import TrainerOptimizerInit
from .group import GroupAborted, SeedGroup

__all__ = [
    "BATCHABLE_CALLBACKS",
    "REFUSED_EXIT_STATUS",
    "Unbatchable",
    "main",
    "run_seeds",
    "seed_argvs",
    "unbatchable",
]

REFUSED_EXIT_STATUS = 3
"""Exit status of :func:`main` when the runs cannot be batched (a study then runs them singly); bad input: 2."""


class Unbatchable(ValueError):
    """Runs the batched step cannot train together; the message names why."""


BATCHABLE_CALLBACKS: tuple[type[TrainerCallback], ...] = (
    InterruptCallback,
    PredictionRecorder,
    ReinitCallback,  # its surgery is done before the seeds are stacked
    LLRDCallback,  # the optimizer's parameter groups, per seed
    L2SPCallback,
    GradNormCallback,
    LossSpikeCallback,
    EarlyFailureCallback,  # a seed stopped early leaves the group
    DevFailureCallback,
    NonFiniteGuardCallback,  # without roll-back (checked below)
)
"""The job's callbacks a batched seed can run: they read the model, or shape its optimizer, or stop the seed."""


def seed_argvs(argv: Sequence[str], seeds: Sequence[int], output_dir: str) -> list[list[str]]:
    """The job's arguments for each seed: ``argv`` with ``--seed k --output_dir <output_dir>/seed-k``."""
    return [
        [*argv, "--seed", str(seed), "--output_dir", str(Path(output_dir) / f"seed-{seed}")] for seed in seeds
    ]


def unbatchable(args: Sequence[FineTuneArguments], setups: Sequence[Setup]) -> str | None:
    """Why these runs cannot be trained as one batched computation, or ``None`` when they can."""
    first = args[0]
    if first.run.restarts:
        return "--restarts chooses the next seed from the last run's verdict, one run after another"
    if any(a.training.dropout_seed is not None for a in args):
        return "--dropout_seed: the batched forward draws every seed's dropout from the group's own stream"
    if first.training.world_size > 1 or is_torch_xla_available():
        return "it runs in one process on one CPU or GPU, not several processes or an XLA device"
    if setups[0].trainer.args.device.type == "cuda":
        return (
            "batched seeds are verified on the CPU only: their first trial on a GPU failed, its cause not yet known; "
            "on a GPU, --runs-per-gpu shares it between single runs"
        )
    if first.training.activation_checkpointing:
        return "activation checkpointing recomputes the forward per model, outside the batched computation"
    if first.training.gradient_accumulation_steps > 1:
        return (
            "--gradient_accumulation_steps: accelerate's one gradient state per process would let one seed's "
            "micro-step skip another's optimizer step"
        )
    if first.training.torch_compile:
        return "--torch_compile compiles each model's own forward; the batched forward runs outside it"
    if first.training.label_smoothing_factor:
        return "--label_smoothing_factor is not supported in the batched step yet"
    for setup in setups:
        for callback in setup.trainer.callback_handler.callbacks:
            if type(callback).__module__.startswith("transformers."):
                continue  # the Trainer's flow, progress and reporting callbacks
            if not isinstance(callback, BATCHABLE_CALLBACKS):
                return (
                    f"{type(callback).__name__} changes the model's forward or its weights outside the optimizer, "
                    "per seed"
                )
            if isinstance(callback, NonFiniteGuardCallback) and callback.max_rollbacks:
                return "--rollback_on_divergence restores one seed's weights outside the optimizer"
    if len({len(setup.trainer.train_dataset) for setup in setups}) > 1:
        return "the seeds' training sets differ in size"
    return None


def run_seeds(argvs: Sequence[Sequence[str]]) -> list[RunResults]:
    """Train the runs of ``argvs`` (the job's arguments of each seed) together and return their results, each
    also written to its own ``results.json``.

    Raises:
        ValueError: arguments that differ in more than the seeds and output directories, or runs the batched step
            cannot train (the reason named; run them singly).
    """
    args = [parse_fine_tune_args(list(argv)) for argv in argvs]
    _check_one_recipe(args)
    setups = [prepare(a) for a in args]
    reason = unbatchable(args, setups)
    if reason is not None:
        raise Unbatchable(f"these seeds cannot be trained batched: {reason}; run them singly")
    seeds = [a.training.seed for a in args]
    tokenizer = setups[0].trainer.processing_class
    group = SeedGroup(
        [setup.trainer.model for setup in setups],
        seeds,
        pad_token_id=getattr(tokenizer, "pad_token_id", None) or 0,
    )
    _one_at_a_time([setup.trainer for setup in setups])
    _backward_together(group, [setup.trainer for setup in setups])
    started = time.perf_counter()
    outcomes = _run_threads(group, args, setups)
    shared_s = time.perf_counter() - started
    results = []
    for setup, outcome in zip(setups, outcomes, strict=True):
        marked = _mark_batched(outcome, seeds, shared_s)
        write_results(setup.results_path, marked)
        results.append(marked)
    return results


def _one_at_a_time(trainers: Sequence[TrainerOptimizerInit]) -> None:
    """Let one seed at a time evaluate or fetch a training batch.

    accelerate keeps one gradient state per process, whose *active* dataloader (the last one started) says where
    an evaluation's batches end (``gather_for_metrics`` drops the padding of the last one by its ``remainder``); a
    seed that starts its next epoch while another evaluates would become that dataloader, and cut the other's
    predictions short. Training steps are not affected: their forward and backward are the group's.
    """
    lock = threading.RLock()

    def exclusive(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return locked

    for trainer in trainers:
        trainer.evaluation_loop = exclusive(trainer.evaluation_loop)
        trainer.get_batch_samples = exclusive(trainer.get_batch_samples)


def _backward_together(group: SeedGroup, trainers: Sequence[TrainerOptimizerInit]) -> None:
    """After each seed's training step (its forward and ``loss.backward()``), wait in the seed's own thread for the
    group's batched backward, which fills the seed's ``.grad`` before the Trainer clips and steps."""

    def together(index: int, training_step: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(training_step)
        def step(*args: Any, **kwargs: Any) -> Any:
            loss = training_step(*args, **kwargs)
            group.backward(index)
            return loss

        return step

    for index, trainer in enumerate(trainers):
        trainer.training_step = together(index, trainer.training_step)


def _check_one_recipe(args: Sequence[FineTuneArguments]) -> None:
    """The runs must differ in their seeds and output directories only."""
    varying = {"seed", "data_seed", "output_dir", "logging_dir", "run_name"}

    def recipe(a: FineTuneArguments) -> dict:
        values = a.to_dict()
        return {
            group: {k: v for k, v in section.items() if k not in varying}
            if isinstance(section, dict)
            else section
            for group, section in values.items()
        }

    first = recipe(args[0])
    for a in args[1:]:
        if recipe(a) != first:
            raise ValueError(
                "batched seeds must share one recipe: their arguments may differ in --seed, --data_seed and "
                "--output_dir only"
            )


def _run_threads(
    group: SeedGroup, args: Sequence[FineTuneArguments], setups: Sequence[Setup]
) -> list[RunResults]:
    """Each seed's ``run`` in its own thread; the first error (not a follower's :class:`GroupAborted`) is
    raised once all have stopped."""
    outcomes: list[RunResults | None] = [None] * len(setups)
    errors: list[BaseException | None] = [None] * len(setups)

    def work(index: int) -> None:
        try:
            outcomes[index] = run(args[index], setups[index])[1]
        except BaseException as error:  # re-raised below, in the calling thread
            errors[index] = error
            group.abort(error)
        finally:
            group.leave(index)

    threads = [
        threading.Thread(target=work, args=(i,), name=f"seed-{args[i].training.seed}")
        for i in range(len(setups))
    ]
    with checkpoint_on_signals(*(setup.interrupts for setup in setups)):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    first = next((e for e in errors if e is not None and not isinstance(e, GroupAborted)), None)
    first = first or next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return outcomes  # type: ignore[return-value]


def _mark_batched(results: RunResults, seeds: Sequence[int], shared_s: float) -> RunResults:
    """The results with how they were trained: the group's seeds and its wall time, which they shared."""
    effective = {**results.effective, "batched_seeds": list(seeds), "batched_wall_time_s": round(shared_s, 3)}
    return dataclasses.replace(results, effective=effective)


def main(argv: list[str] | None = None) -> int:
    """``--seeds K ...`` and the job's flags: one run per seed, in ``<output_dir>/seed-<k>``; or ``--group FILE``: the
    runs whose arguments a JSON file lists (``{"argvs": [[...], ...]}``, as a study writes it). Bad input ends with
    one line on stderr and exit status 2, runs that cannot be batched with :data:`REFUSED_EXIT_STATUS`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        results = run_seeds(_group_argvs(argv))
    except Unbatchable as error:
        print(f"tft-fine-tune-seeds: {error}", file=sys.stderr)
        return REFUSED_EXIT_STATUS
    except RunInterrupted as interrupted:  # each seed saved a checkpoint: the same command resumes them
        return interrupted.exit_status
    except (ValueError, OSError) as error:
        print(f"tft-fine-tune-seeds: error: {error}", file=sys.stderr)
        return 2
    for result in results:
        print(
            f"tft-fine-tune-seeds: seed {result.seed}: {result.main_metric.name} {result.main_metric.value}"
        )
    return 0


def _group_argvs(argv: list[str]) -> list[list[str]]:
    """Each run's arguments, from ``--group FILE`` or from ``--seeds`` and the job's flags."""
    if argv[:1] == ["--group"] and len(argv) == 2:
        return [list(run) for run in json.loads(Path(argv[1]).read_text())["argvs"]]
    seeds, rest = _pop_seeds(argv)
    output_dir = _pop_value(rest, "--output_dir")
    return seed_argvs(rest, seeds, output_dir)


def _pop_seeds(argv: list[str]) -> tuple[list[int], list[str]]:
    if "--seeds" not in argv:
        raise ValueError("give the seeds to train together: --seeds 0 1 2 3")
    start = argv.index("--seeds") + 1
    end = start
    while end < len(argv) and not argv[end].startswith("--"):
        end += 1
    try:
        seeds = [int(value) for value in argv[start:end]]
    except ValueError:
        raise ValueError(f"--seeds takes integers, not {' '.join(argv[start:end])}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs two or more distinct seeds, not {argv[start:end]}")
    return seeds, argv[: start - 1] + argv[end:]


def _pop_value(argv: list[str], flag: str) -> str:
    if flag not in argv or argv.index(flag) + 1 >= len(argv):
        raise ValueError(f"give {flag}: each seed's run goes in {flag}/seed-<k>")
    index = argv.index(flag)
    value = argv[index + 1]
    del argv[index : index + 2]
    return value
