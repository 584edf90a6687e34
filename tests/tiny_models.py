"""Tiny random models of every supported architecture, built from configs in code, and what tests train them with."""

from __future__ import annotations

import torch
import transformers
from torch.utils.data import Dataset

# Small configs in the manner of the Hugging Face test suite (ModelTester classes): a few layers of width 32.
_COMMON = {"vocab_size": 99, "num_attention_heads": 4, "max_position_embeddings": 64, "num_labels": 2}

# Families whose configs take the same arguments as BERT's, as RoBERTa's, or as ELECTRA's.
_BERT_LIKE = {
    "bert": transformers.BertConfig,
    "ernie": transformers.ErnieConfig,
    "megatron-bert": transformers.MegatronBertConfig,
}
_ROBERTA_LIKE = {
    "roberta": transformers.RobertaConfig,
    "xlm-roberta": transformers.XLMRobertaConfig,
    "xlm-roberta-xl": transformers.XLMRobertaXLConfig,
    "camembert": transformers.CamembertConfig,
    "data2vec-text": transformers.Data2VecTextConfig,
    "mpnet": transformers.MPNetConfig,
}
_PROJECTED = {
    "albert": transformers.AlbertConfig,
    "electra": transformers.ElectraConfig,
    "roformer": transformers.RoFormerConfig,
}


def tiny_config(model_type: str, num_layers: int = 4, **overrides) -> transformers.PretrainedConfig:
    """A tiny random config of ``model_type`` with ``num_layers`` layers."""
    sizes = {"hidden_size": 32, "num_hidden_layers": num_layers, "intermediate_size": 37, **_COMMON}
    if model_type in _BERT_LIKE:
        config = _BERT_LIKE[model_type](**sizes)
    elif model_type in _ROBERTA_LIKE:  # RoBERTa's padding index is 1
        config = _ROBERTA_LIKE[model_type](pad_token_id=1, **sizes)
    elif model_type in _PROJECTED:  # embeddings narrower than the layers: an embedding projection
        config = _PROJECTED[model_type](embedding_size=16, **sizes)
    elif model_type == "distilbert":
        common = {k: v for k, v in _COMMON.items() if k != "num_attention_heads"}
        config = transformers.DistilBertConfig(
            dim=32, n_layers=num_layers, n_heads=4, hidden_dim=37, **common
        )
    elif model_type == "deberta-v2":
        config = transformers.DebertaV2Config(
            relative_attention=True,
            position_biased_input=False,
            pos_att_type=["p2c", "c2p"],
            norm_rel_ebd="layer_norm",
            max_relative_positions=32,
            **sizes,
        )
    elif model_type == "deberta":
        config = transformers.DebertaConfig(
            relative_attention=True, pos_att_type=["c2p", "p2c"], max_relative_positions=32, **sizes
        )
    elif model_type == "modernbert":  # special tokens inside the tiny vocabulary
        tokens = {
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "cls_token_id": 1,
            "sep_token_id": 2,
        }
        config = transformers.ModernBertConfig(local_attention=8, **tokens, **sizes)
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


#: Every model type of ``transformers_fine_tuning.LAYER_MAPS``.
ARCHITECTURES = [
    "bert",
    "roberta",
    "albert",
    "electra",
    "distilbert",
    "deberta-v2",
    "deberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "data2vec-text",
    "modernbert",
    "mpnet",
    "roformer",
    "ernie",
    "megatron-bert",
]


def train_steps(model, optimizer, steps: int = 1, seed: int = 0) -> None:
    """``steps`` optimizer steps of ``model`` on one random batch of 4 sequences of 8 tokens."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "input_ids": torch.randint(5, 99, (4, 8), generator=generator),
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    for _ in range(steps):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()


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


def training_args(tmp_path, **overrides) -> transformers.TrainingArguments:
    """``TrainingArguments`` for a few quiet CPU steps of a tiny model in ``tmp_path``; overrides as kwargs."""
    values = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-3,
        "max_steps": 6,
        "save_strategy": "no",
        "report_to": [],
        "logging_steps": 1,
        "seed": 7,
        "disable_tqdm": True,
        "use_cpu": True,
        "dataloader_pin_memory": False,
    }
    values.update(overrides)
    return transformers.TrainingArguments(**values)


class StopAtStep(transformers.TrainerCallback):
    """Ends training at a given step, as a killed job would (after the checkpoint of that step is saved)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
