"""The fine-tune job's data once loaded: the splits cut to size, a held-out split set aside, the evaluation order.

:func:`limit_samples` keeps ``--max_train_samples``/``--max_eval_samples`` examples, :func:`hold_out` moves a
share of the training split to a split never trained on (to choose WiSE-FT's α, or the best evaluation), and
:func:`evaluation_order` sorts the evaluation splits by length, keeping the orders that put predictions back.
"""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from .arguments import DataArguments, FineTuneArguments
from .best import BEST_HELD_OUT
from .evaluation import sort_by_length
from .seeds import subset_indices

__all__ = ["WISE_FT_HELD_OUT", "evaluation_order", "hold_out", "limit_samples"]

WISE_FT_HELD_OUT = "wise_ft_held_out"
"""The split of training examples set aside to choose WiSE-FT's α (``--wise_ft_alphas``): never trained on."""


def limit_samples(raw: DatasetDict, eval_splits: list[str], data: DataArguments) -> DatasetDict:
    """The training and evaluation splits, each cut to its ``--max_*_samples``: the first examples, or for
    training a subset drawn with ``--train_subset_seed``."""
    limits = {"train": data.max_train_samples, **dict.fromkeys(eval_splits, data.max_eval_samples)}
    return DatasetDict(
        {
            split: raw[split].select(range(min(limit or len(raw[split]), len(raw[split]))))
            if split != "train" or data.train_subset_seed is None
            else raw[split].select(
                subset_indices(len(raw[split]), min(limit, len(raw[split])), data.train_subset_seed)
            )
            for split, limit in limits.items()
        }
    )


def hold_out(raw: DatasetDict, args: FineTuneArguments) -> DatasetDict:
    """``raw`` with a share of its training split moved to a held-out split, never trained on (both parts keep
    the file's order): :data:`WISE_FT_HELD_OUT` to choose WiSE-FT's α (``--wise_ft_held_out``), or
    :data:`~.best.BEST_HELD_OUT` to choose the best evaluation (``--best_held_out``)."""
    fine_tuning = args.fine_tuning
    if fine_tuning.wise_ft_held_out_share is not None:
        split, share, seed, flag, why = (
            WISE_FT_HELD_OUT,
            fine_tuning.wise_ft_held_out_share,
            fine_tuning.wise_ft_held_out_seed,
            "--wise_ft_held_out",
            "to choose WiSE-FT's α",
        )
    elif fine_tuning.best_held_out is not None:
        split, share, seed, flag, why = (
            BEST_HELD_OUT,
            fine_tuning.best_held_out,
            fine_tuning.best_held_out_seed,
            "--best_held_out",
            "to choose the best evaluation",
        )
    else:
        return raw
    train = raw["train"]
    size = round(share * len(train))
    if not 0 < size < len(train):
        raise ValueError(
            f"{flag} {share}: {size} of the {len(train)} training examples would be held out {why}; hold out at "
            "least one and train on the rest."
        )
    held = subset_indices(len(train), size, seed)
    kept = sorted(set(range(len(train))) - set(held))
    return DatasetDict({**raw, "train": train.select(kept), split: train.select(held)})


def evaluation_order(
    tokenized: DatasetDict, eval_splits: list[str], data: DataArguments
) -> tuple[dict[str, Dataset], dict[str, list[int]]]:
    """The evaluation splits as the Trainer will see them (longest example first, see
    :func:`.evaluation.sort_by_length`, unless ``--sort_eval_by_length false`` or every example is padded to one
    length anyway), and the orders that put their predictions back."""
    if not data.sort_eval_by_length or data.pad_to_max_length:
        return {split: tokenized[split] for split in eval_splits}, {}
    ordered = {split: sort_by_length(tokenized[split]) for split in eval_splits}
    return {split: dataset for split, (dataset, _) in ordered.items()}, {
        split: order for split, (_, order) in ordered.items()
    }
