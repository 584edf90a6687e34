"""The seeds of a run, and what each one decides.

Fine-tuning instability has several random sources, and a seed study can only tell them apart if each has its
own seed (Dodge et al. 2020, "Fine-Tuning Pretrained Language Models: Weight Initializations, Data Orders, and
Early Stopping"; Zhang et al. 2021, "Revisiting Few-sample BERT Fine-tuning", Sec. 3):

* ``--seed`` — the new head's initialisation (and the draws of ``--reinit_layers``);
* ``--data_seed`` — the order of the training examples (default: ``--seed``);
* ``--dropout_seed`` — the random draws during training: dropout and Mixout masks (default: ``--seed``, as the
  Trainer does it);
* ``--train_subset_seed`` — which examples a ``--max_train_samples`` subset holds: a seeded random subset
  instead of the first N (Zhang et al. downsample each task to 1,000 examples with a seed).

The dropout seed takes effect when training starts (:class:`DropoutSeedCallback`), after the head and any
re-initialised layers were drawn from ``--seed``; the data order has its own generator (seeded by the data
seed), so re-seeding for dropout leaves it alone. A resumed run restores the random state of its checkpoint.
"""

from __future__ import annotations

import numpy as np
from transformers import TrainerCallback, set_seed

__all__ = ["DropoutSeedCallback", "subset_indices"]


def subset_indices(total: int, size: int, seed: int) -> list[int]:
    """``size`` distinct indices of ``range(total)`` drawn with ``seed``, in increasing order (the examples keep
    their order in the file; the data seed shuffles them)."""
    if not 0 < size <= total:
        raise ValueError(f"a subset of {size} examples cannot be drawn from {total}")
    return sorted(int(i) for i in np.random.default_rng(seed).choice(total, size=size, replace=False))


class DropoutSeedCallback(TrainerCallback):
    """Re-seeds every random generator (``transformers.set_seed``) when training starts: the dropout and
    Mixout masks then follow ``seed``, whatever seed drew the head."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_begin(self, args, state, control, **kwargs):
        set_seed(self.seed)
