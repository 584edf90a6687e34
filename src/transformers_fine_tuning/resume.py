"""Resuming a fine-tuning run from its checkpoints, the way ``run_glue.py`` does, with its two traps closed.

``run_glue.py`` resumes from ``get_last_checkpoint(output_dir)`` when the output directory holds checkpoints.
Two things can make that wrong: a run killed while it was writing a checkpoint leaves a checkpoint that is
cut off (the Trainer writes ``trainer_state.json`` last, so a checkpoint without a readable one is incomplete),
and the checkpoints may belong to a run with other arguments (another seed, learning rate, task). Here an
incomplete checkpoint is never resumed from (the last complete one is), and automatic resumption refuses
checkpoints made with other arguments, naming the differences, instead of silently continuing someone else's
run. Nothing happens silently from scratch either: an output directory with checkpoints is resumed, or the
user says ``--resume_from_checkpoint false`` to start over.

:func:`plan_resume` only decides (it runs before any data or model is loaded, so a refusal costs nothing);
:meth:`ResumePlan.apply` does the one thing a plan may do to the directory — remove checkpoints that must not
be resumed (incomplete ones, or all of them when starting over) — right before training.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .results import write_json_atomic

__all__ = [
    "ARGUMENTS_FILE",
    "IGNORED_ARGUMENTS",
    "ResumePlan",
    "argument_differences",
    "checkpoint_step",
    "complete_checkpoints",
    "plan_resume",
]

logger = logging.getLogger(__name__)

ARGUMENTS_FILE = "fine-tune-arguments.json"
"""Written into the output directory when training starts: the arguments its checkpoints were made with."""

IGNORED_ARGUMENTS = frozenset(
    {
        "training.resume_from_checkpoint",
        "training.output_dir",
        "training.local_rank",
        "training.disable_tqdm",
        "training.report_to",
        "training.dataloader_num_workers",
        "data.preprocessing_num_workers",
        "data.tokenized_cache_dir",
        "run.overwrite_results",
        "run.save_final_model",
        "run.xla_launch",
        "run.tpu_num_cores",
    }
)
"""Arguments that may change between an interrupted run and its resumption: they do not change what is trained."""

_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_LAST = ("true", "last", "yes", "1")
_NEVER = ("false", "no", "none", "0")


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """The global step a checkpoint holds, from its ``trainer_state.json``; ``None`` if it is incomplete."""
    try:
        return TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json")).global_step
    except (OSError, ValueError, TypeError):  # missing, cut off mid-write, or not the Trainer's
        return None


def _checkpoint_dirs(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [path for path in output_dir.iterdir() if path.is_dir() and _CHECKPOINT.match(path.name)]
    return sorted(found, key=lambda path: int(_CHECKPOINT.match(path.name).group(1)))


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """The checkpoints of ``output_dir`` that can be resumed from, oldest first."""
    return [path for path in _checkpoint_dirs(Path(output_dir)) if checkpoint_step(path) is not None]


def _flatten(arguments: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in arguments.items():
        if isinstance(value, Mapping) and not prefix:  # one level: the argument groups
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def argument_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``["training.learning_rate: 2e-05 -> 3e-05", ...]`` between two argument records (groups of values),
    leaving out :data:`IGNORED_ARGUMENTS`. Both are compared as JSON values (tuples are lists)."""
    old, new = _flatten(json.loads(json.dumps(recorded))), _flatten(json.loads(json.dumps(current)))
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key not in IGNORED_ARGUMENTS and old.get(key) != new.get(key)
    ]


@dataclass(frozen=True)
class ResumePlan:
    """What a run does with its output directory's checkpoints.

    Attributes:
        checkpoint: the checkpoint to resume from, or ``None`` to train from the start.
        step: its global step.
        remove: checkpoints to delete before training (incomplete ones; all of them when starting over), so
            that a later resumption can never pick one of them.
        explicit: the user asked for this checkpoint (``--resume_from_checkpoint``), rather than it being found.
        arguments: the run's argument record, written to :data:`ARGUMENTS_FILE` when training starts.
    """

    checkpoint: Path | None = None
    step: int | None = None
    remove: tuple[Path, ...] = ()
    explicit: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    def apply(self, output_dir: str | Path) -> None:
        """Remove :attr:`remove` and record the arguments; call once, on the main process, before training."""
        for path in self.remove:
            logger.warning(
                "removing checkpoint %s: %s", path, "incomplete" if self.checkpoint else "starting over"
            )
            shutil.rmtree(path, ignore_errors=True)
        write_json_atomic(Path(output_dir) / ARGUMENTS_FILE, self.arguments)


def plan_resume(
    output_dir: str | Path,
    resume_from_checkpoint: str | bool | None,
    arguments: Mapping[str, Any],
    *,
    start_over: bool = False,
) -> ResumePlan:
    """Decide whether the run resumes, and from where; touches nothing.

    Args:
        output_dir: the run's output directory.
        resume_from_checkpoint: ``--resume_from_checkpoint``: ``None`` (not given: resume from the last complete
            checkpoint if there is one), ``true``/``last`` (resume from it; there must be one), ``false``/``no``
            (start over: existing checkpoints are removed when training starts), or a checkpoint directory.
        arguments: the run's argument record (``FineTuneArguments.to_dict()``), compared with the one the
            checkpoints were made with when resuming automatically.
        start_over: start over whatever is there (the run replaces a finished run's results).

    Raises:
        FileNotFoundError: the checkpoint asked for does not exist, is incomplete, or there is none.
        ValueError: automatic resumption found checkpoints made with other arguments.
    """
    output_dir = Path(output_dir)
    arguments = dict(arguments)
    every = _checkpoint_dirs(output_dir)
    complete = [path for path in every if checkpoint_step(path) is not None]
    incomplete = tuple(path for path in every if path not in complete)
    choice = _choice(resume_from_checkpoint)

    if start_over or (choice is not None and choice.lower() in _NEVER):
        return ResumePlan(remove=tuple(every), arguments=arguments)
    if choice is not None and choice.lower() not in _LAST:
        return _explicit_plan(choice, incomplete, arguments)
    if not complete:
        if choice is not None:  # true / last
            raise FileNotFoundError(
                f"--resume_from_checkpoint {choice}: no complete checkpoint in {output_dir} to resume from"
                + (f" ({len(incomplete)} incomplete)" if incomplete else "")
                + "; leave the flag out to train from the start"
            )
        return ResumePlan(remove=incomplete, arguments=arguments)

    last = complete[-1]
    if choice is None:  # found, not asked for: only a run of the same arguments is continued
        _check_same_arguments(output_dir, last, arguments)
    return ResumePlan(
        last, checkpoint_step(last), incomplete, explicit=choice is not None, arguments=arguments
    )


def _choice(resume_from_checkpoint: str | bool | None) -> str | None:
    """``--resume_from_checkpoint`` as a stripped string (a bool as ``"true"``/``"false"``), or ``None``."""
    value = resume_from_checkpoint
    if isinstance(value, bool):
        value = "true" if value else "false"
    return None if value is None else str(value).strip()


def _explicit_plan(choice: str, incomplete: tuple[Path, ...], arguments: dict[str, Any]) -> ResumePlan:
    """Resume from the checkpoint directory the user named; it must be complete."""
    path = Path(choice).expanduser()
    step = checkpoint_step(path)
    if step is None:
        raise FileNotFoundError(
            f"--resume_from_checkpoint {choice}: not a complete checkpoint (no readable "
            f"{path / 'trainer_state.json'}); give a checkpoint-<step> directory, true for the last one in "
            "--output_dir, or false to start over"
        )
    return ResumePlan(path, step, incomplete, explicit=True, arguments=arguments)


def _check_same_arguments(output_dir: Path, last: Path, arguments: dict[str, Any]) -> None:
    """Refuse to continue checkpoints found in ``output_dir`` that were made with other arguments.

    Without a readable :data:`ARGUMENTS_FILE` the checkpoints are resumed unchecked, with a warning.
    """
    try:
        recorded = json.loads((output_dir / ARGUMENTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
        logger.warning(
            "%s holds checkpoints but no %s: resuming from %s without checking its arguments",
            output_dir,
            ARGUMENTS_FILE,
            last,
        )
    differences = [] if recorded is None else argument_differences(recorded, arguments)
    if differences:
        shown = "; ".join(differences[:6]) + (
            f"; and {len(differences) - 6} more" if len(differences) > 6 else ""
        )
        raise ValueError(
            f"{output_dir} holds checkpoints (the last at step {checkpoint_step(last)}) of a run with other "
            f"arguments ({shown}): run the same arguments again to resume it, pass "
            "--resume_from_checkpoint false to start over (its checkpoints are removed), or use another "
            "--output_dir"
        )
