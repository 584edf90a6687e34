"""Seeds trained together (:mod:`transformers_fine_tuning.batched`): each seed of a batched group against its
solo run, reruns of a group, and what is refused (a study that batches its seeds: ``study/test_batched_study.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers_fine_tuning.batched import Unbatchable, run_seeds, seed_argvs
from transformers_fine_tuning.batched.job import main
from transformers_fine_tuning.fine_tune import parse_fine_tune_args, prepare, run

SEEDS = (1, 2)


@pytest.fixture(scope="module")
def tiny_bert_no_dropout(tmp_path_factory, minilm_path) -> str:
    """A tiny random 2-layer BERT without dropout, with the MiniLM's tokenizer."""
    import transformers

    from tiny_models import tiny_config

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    config = tiny_config(
        "bert",
        num_layers=2,
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    directory = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def _flags(model: str, glue_dir: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", model, "--data_dir", str(glue_dir / "RTE"), "--task_name", "rte",
        "--max_train_samples", "32", "--max_eval_samples", "48", "--max_seq_length", "64",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--num_train_epochs", "2",
        "--learning_rate", "5e-4", "--logging_steps", "1", "--eval_strategy", "epoch", "--disable_tqdm", "true",
        "--use_cpu", "true", "--report_to", "none", *extra,
    ]  # fmt: skip


def test_each_batched_seed_equals_its_solo_run_without_dropout(tmp_path, tiny_bert_no_dropout, glue_dir):
    """With dropout off and the data order of its seed, a seed trained in a batched group has its solo run's
    loss and gradient norm at every step, its evaluations and its final weights, within float tolerance."""
    flags = _flags(tiny_bert_no_dropout, glue_dir, "--save_final_model", "true")
    solo = {}
    for seed, argv in zip(SEEDS, seed_argvs(flags, SEEDS, str(tmp_path / "solo")), strict=True):
        args = parse_fine_tune_args(argv)
        solo[seed] = run(args, prepare(args))[1]
    batched = run_seeds(seed_argvs(flags, SEEDS, str(tmp_path / "batched")))
    assert [r.seed for r in batched] == list(SEEDS)
    for seed, together in zip(SEEDS, batched, strict=True):
        alone = solo[seed]
        assert together.effective["batched_seeds"] == list(SEEDS)
        assert len(together.train_loss_history) == len(alone.train_loss_history) == 8
        for a, b in zip(alone.train_loss_history, together.train_loss_history, strict=True):
            assert (a.step, a.learning_rate) == (b.step, b.learning_rate)
            assert b.loss == pytest.approx(a.loss, rel=1e-5) and b.grad_norm == pytest.approx(
                a.grad_norm, rel=1e-4
            )
        assert [e.metrics["accuracy"] for e in together.evaluations] == [
            e.metrics["accuracy"] for e in alone.evaluations
        ]
        weights_alone = load_file(tmp_path / "solo" / f"seed-{seed}" / "model.safetensors")
        weights_together = load_file(tmp_path / "batched" / f"seed-{seed}" / "model.safetensors")
        for name, value in weights_alone.items():
            torch.testing.assert_close(weights_together[name], value, rtol=1e-4, atol=1e-5)
        on_disk = json.loads((tmp_path / "batched" / f"seed-{seed}" / "results.json").read_text())
        assert on_disk["effective"]["batched_seeds"] == list(SEEDS) and on_disk["status"] == "completed"
    # the seeds really differ (their heads and data orders): the check above compares each with its own
    assert batched[0].train_loss_history[0].loss != batched[1].train_loss_history[0].loss


def test_a_group_with_dropout_reruns_identically(tmp_path, tiny_bert_dir, glue_dir, capsys):
    """Dropout on: the group's stream gives each seed its own masks, and the same group run again (through the
    command, ``--seeds``) gives the same losses, step by step. Four seeds evaluate after every epoch, one at a
    time (accelerate's one gradient state per process: evaluations at once cut each other's predictions short)."""
    flags = _flags(tiny_bert_dir, glue_dir)
    seeds = (1, 2, 3, 4)
    histories = []
    for attempt in ("first", "again"):
        assert main(["--seeds", *map(str, seeds), "--output_dir", str(tmp_path / attempt), *flags]) == 0
        histories.append(
            [
                [
                    entry["loss"]
                    for entry in _results(tmp_path / attempt / f"seed-{seed}")["train_loss_history"]
                ]
                for seed in seeds
            ]
        )
    assert histories[0] == histories[1]
    assert len({tuple(history) for history in histories[0]}) == len(seeds)
    assert "seed 4: accuracy" in capsys.readouterr().out


def test_bf16_seeds_trained_together_compute_under_autocast(
    tmp_path, tiny_bert_no_dropout, glue_dir, monkeypatch
):
    """``--bf16`` autocasts the batched forward as it does a solo run's: every linear layer of the training
    forwards runs under CPU autocast (none does without ``--bf16``), and each seed's losses are its solo bf16
    run's within bf16's rounding."""
    autocast_seen = []
    linear = torch.nn.functional.linear

    def recording_linear(*args, **kwargs):
        autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return linear(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", recording_linear)
    flags = _flags(tiny_bert_no_dropout, glue_dir, "--eval_strategy", "no")
    run_seeds(seed_argvs(flags, SEEDS, str(tmp_path / "fp32")))
    assert autocast_seen and not any(autocast_seen)

    autocast_seen.clear()
    solo = []
    for argv in seed_argvs([*flags, "--bf16", "true"], SEEDS, str(tmp_path / "solo")):
        args = parse_fine_tune_args(argv)
        solo.append([entry.loss for entry in run(args, prepare(args))[1].train_loss_history])
    batched = run_seeds(seed_argvs([*flags, "--bf16", "true"], SEEDS, str(tmp_path / "batched")))
    assert autocast_seen and all(autocast_seen)
    for alone, together in zip(solo, batched, strict=True):
        assert [entry.loss for entry in together.train_loss_history] == pytest.approx(alone, rel=1e-3)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("--mixout", "0.1"), "MixoutCallback changes the model's forward"),
        (("--dropout_seed", "3"), "--dropout_seed"),
        (("--torch_compile", "true"), "--torch_compile compiles each model's own forward"),
    ],
)
def test_what_cannot_be_batched_is_refused_with_the_reason(tmp_path, tiny_bert_dir, glue_dir, extra, reason):
    argvs = seed_argvs(_flags(tiny_bert_dir, glue_dir, *extra), SEEDS, str(tmp_path))
    with pytest.raises(Unbatchable, match=reason):
        run_seeds(argvs)
    assert (
        main(
            [
                "--seeds",
                "1",
                "2",
                "--output_dir",
                str(tmp_path / "cli"),
                *_flags(tiny_bert_dir, glue_dir, *extra),
            ]
        )
        == 3
    )


def test_seeds_of_different_recipes_are_refused(tmp_path, tiny_bert_dir, glue_dir):
    first, second = seed_argvs(_flags(tiny_bert_dir, glue_dir), SEEDS, str(tmp_path))
    with pytest.raises(ValueError, match="share one recipe"):
        run_seeds([first, [*second, "--learning_rate", "1e-4"]])
    assert main(["--seeds", "1", "--output_dir", str(tmp_path), *_flags(tiny_bert_dir, glue_dir)]) == 2


def _results(directory: str | Path) -> dict:
    return json.loads((Path(directory) / "results.json").read_text())
