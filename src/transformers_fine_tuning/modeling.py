"""Load a pretrained encoder and its tokenizer for a task (GLUE's or your own data's), with errors that say how
to run offline."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from .hub import hub_offline
from .tasks import Task

__all__ = ["load_model_and_tokenizer", "looks_like_local_path", "max_input_length"]


def looks_like_local_path(name: str) -> bool:
    """Whether ``name`` can only be a path, never a Hub id (``org/model`` has one slash and no dots before it)."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def _load_error(what: str, name: str, error: Exception) -> OSError:
    if looks_like_local_path(name) and not Path(name).expanduser().exists():
        hint = f"there is no such directory ({Path(name).expanduser().resolve()})"
    elif Path(name).expanduser().is_dir():
        hint = "the directory lacks what from_pretrained needs"
    elif _no_hub(error):
        hint = "the Hub is not reachable (offline) and it is not in the local cache"
    else:
        hint = "it is neither a local directory nor a model id the Hub serves"
    return OSError(
        f"Cannot load the {what} {name!r}: {hint}. Point --model_name_or_path at a local directory that holds "
        f"config.json, the weights and the tokenizer files (e.g. one saved with save_pretrained). "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    )


def _no_hub(error: Exception) -> bool:
    """Whether a loading error comes from having no Hub (offline mode, or no connection)."""
    text = str(error).lower()
    return hub_offline() or "offline" in text or "connect" in text


def load_model_and_tokenizer(
    model_name_or_path: str,
    task: Task,
    *,
    tokenizer_name: str | None = None,
    cache_dir: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sequence-classification model with a new head sized for ``task``, and its tokenizer.

    The head is drawn from the global torch RNG: seed it first (``transformers.set_seed``) so that the seed
    decides the head initialisation. The label names of a classification task go into the config
    (``id2label``, ``label2id``), so a saved model reports readable labels — for your own data, the classes as
    the training split has them.

    Raises:
        OSError: the model or tokenizer cannot be loaded; the message says how to use a local directory.
    """
    try:
        config = AutoConfig.from_pretrained(
            model_name_or_path,
            num_labels=task.num_labels,
            finetuning_task=task.name,
            cache_dir=cache_dir,
            **(
                {}
                if task.is_regression
                else {
                    "id2label": dict(enumerate(task.label_names)),
                    "label2id": {name: index for index, name in enumerate(task.label_names)},
                }
            ),
        )
    except (OSError, ValueError) as error:
        raise _load_error("model", model_name_or_path, error) from error
    tokenizer_source = tokenizer_name or model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        raise _load_error("tokenizer", tokenizer_source, error) from error
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_name_or_path, config=config, cache_dir=cache_dir
        )
    except (OSError, ValueError) as error:
        raise _load_error("model weights", model_name_or_path, error) from error
    return model, tokenizer


_NO_LIMIT = 1_000_000  # tokenizers without a known limit report a huge model_max_length (int(1e30))


def max_input_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The most tokens the model takes: its absolute position embeddings (less RoBERTa's padding offset: its
    positions start after the padding index) and the tokenizer's ``model_max_length``, whichever is smaller;
    ``None`` when neither says (relative positions without a tokenizer limit)."""
    limits = []
    config = model.config
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "position_biased_input", True):  # DeBERTa-v2: relative positions only
        embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
        padding_idx = getattr(embeddings, "padding_idx", None)
        limits.append(positions - (padding_idx + 1 if isinstance(padding_idx, int) else 0))
    if 0 < tokenizer.model_max_length < _NO_LIMIT:
        limits.append(tokenizer.model_max_length)
    return min(limits) if limits else None
