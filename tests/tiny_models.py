"""Tiny random models of every supported architecture, built from configs in code."""

from __future__ import annotations

import torch
import transformers
from torch.utils.data import Dataset

# Small configs in the manner of the Hugging Face test suite (ModelTester classes): a few layers of width 32.
_COMMON = {"vocab_size": 99, "num_attention_heads": 4, "max_position_embeddings": 64, "num_labels": 2}


def tiny_config(model_type: str, num_layers: int = 4, **overrides) -> transformers.PretrainedConfig:
    """A tiny random config of ``model_type`` with ``num_layers`` layers."""
    if model_type == "bert":
        config = transformers.BertConfig(
            hidden_size=32, num_hidden_layers=num_layers, intermediate_size=37, **_COMMON
        )
    elif model_type == "roberta":
        config = transformers.RobertaConfig(
            hidden_size=32, num_hidden_layers=num_layers, intermediate_size=37, pad_token_id=1, **_COMMON
        )
    elif model_type == "albert":
        config = transformers.AlbertConfig(
            embedding_size=16, hidden_size=32, num_hidden_layers=num_layers, intermediate_size=37, **_COMMON
        )
    elif model_type == "electra":
        config = transformers.ElectraConfig(
            embedding_size=16, hidden_size=32, num_hidden_layers=num_layers, intermediate_size=37, **_COMMON
        )
    elif model_type == "distilbert":
        common = {k: v for k, v in _COMMON.items() if k != "num_attention_heads"}
        config = transformers.DistilBertConfig(
            dim=32, n_layers=num_layers, n_heads=4, hidden_dim=37, **common
        )
    elif model_type == "deberta-v2":
        config = transformers.DebertaV2Config(
            hidden_size=32,
            num_hidden_layers=num_layers,
            intermediate_size=37,
            relative_attention=True,
            position_biased_input=False,
            pos_att_type=["p2c", "c2p"],
            norm_rel_ebd="layer_norm",
            max_relative_positions=32,
            **_COMMON,
        )
    else:
        raise ValueError(model_type)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def tiny_model(
    model_type: str, num_layers: int = 4, seed: int = 0, **overrides
) -> transformers.PreTrainedModel:
    """A tiny random ``AutoModelForSequenceClassification`` of ``model_type``."""
    torch.manual_seed(seed)
    return transformers.AutoModelForSequenceClassification.from_config(
        tiny_config(model_type, num_layers, **overrides)
    )


ARCHITECTURES = ["bert", "roberta", "albert", "electra", "distilbert", "deberta-v2"]


class FirstTokenTask(Dataset):
    """Label = whether the first token is above 50: learnable in a few dozen steps."""

    def __init__(self, n=64, length=8, seed=0, flip=()):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(5, 99, (n, length), generator=generator)
        self.labels = (self.input_ids[:, 0] > 50).long()
        for index in flip:
            self.labels[index] = 1 - self.labels[index]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}
