"""Bad input, one table: every case ends with exit status 2 and one line on stderr that names the problem, where
it is (flag, key, file and line) and the fix — before any training step (no checkpoint, no results.json, no loss
logged). The fine-tune job is called in process (``main(argv)``, as the console script calls it), the study
command likewise."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import transformers

from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.fine_tune import main as fine_tune_main
from transformers_fine_tuning.study.cli import main as study_main
from transformers_fine_tuning.tasks import load_glue_dir
from transformers_fine_tuning.tasks.glue.export import write_glue_dir

from tiny_models import tiny_config

RTE_ROWS = ("sentence1", "sentence2", "label")


@pytest.fixture(scope="module")
def world(tmp_path_factory, minilm_path, glue_dir) -> dict[str, Path]:
    """The files the cases need: a tiny 2-layer BERT with 128 positions, RTE and STS-B variants, bad files."""
    root = tmp_path_factory.mktemp("bad-input")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    config = tiny_config("bert", num_layers=2, vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    transformers.AutoModel.from_config(config).save_pretrained(root / "tiny")
    tokenizer.save_pretrained(root / "tiny")
    rte = load_glue_dir("rte", glue_dir)
    small = type(rte)(
        {"train": rte["train"].select(range(16)), "validation": rte["validation"].select(range(8))}
    )
    write_glue_dir("rte", small, root / "glue")
    train_lines = (root / "glue" / "RTE" / "train.tsv").read_text().splitlines()
    (root / "no-dev" / "RTE").mkdir(parents=True)
    (root / "no-dev" / "RTE" / "train.tsv").write_text("\n".join(train_lines) + "\n")
    malformed = list(train_lines)
    malformed[6] = malformed[6].rsplit("\t", 1)[0]  # line 7 loses its label column
    (root / "malformed" / "RTE").mkdir(parents=True)
    (root / "malformed" / "RTE" / "train.tsv").write_text("\n".join(malformed) + "\n")
    (root / "malformed" / "RTE" / "dev.tsv").write_text((root / "glue" / "RTE" / "dev.tsv").read_text())
    unknown_label = list(train_lines)
    unknown_label[3] = unknown_label[3].rsplit("\t", 1)[0] + "\tmaybe"
    (root / "unknown-label" / "RTE").mkdir(parents=True)
    (root / "unknown-label" / "RTE" / "train.tsv").write_text("\n".join(unknown_label) + "\n")
    (root / "unknown-label" / "RTE" / "dev.tsv").write_text((root / "glue" / "RTE" / "dev.tsv").read_text())
    latin = list(train_lines)
    latin[2] = latin[2].replace("a", "é", 1)
    (root / "latin1" / "RTE").mkdir(parents=True)
    (root / "latin1" / "RTE" / "train.tsv").write_bytes(("\n".join(latin) + "\n").encode("latin-1"))
    (root / "latin1" / "RTE" / "dev.tsv").write_text((root / "glue" / "RTE" / "dev.tsv").read_text())
    rows = [RTE_ROWS] + [(f"Le café {i}", f"crème {i}", "entailment") for i in range(8)]
    with open(root / "latin1.csv", "w", encoding="latin-1", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with open(root / "ok.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([*rows, ("a", "b", "not_entailment")])
    (root / "utf16.tsv").write_text("\n".join("\t".join(row) for row in rows) + "\n", encoding="utf-16")
    (root / "header.tsv").write_text("\t".join(RTE_ROWS) + "\n")
    (root / "header.csv").write_text(",".join(RTE_ROWS) + "\n")
    stsb = root / "stsb" / "STS-B"
    stsb.mkdir(parents=True)
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    line = "{i}\tmain\tf\t2012\t{i}\tnone\tnone\tA man plays.\tA man is playing.\t{score}"
    scores = ["1.0", "nan", "3.0", "4.0"]
    (stsb / "train.tsv").write_text(
        "\n".join([header, *(line.format(i=i, score=s) for i, s in enumerate(scores))]) + "\n"
    )
    (stsb / "dev.tsv").write_text("\n".join([header, line.format(i=0, score="2.0")]) + "\n")
    (root / "syntax.yaml").write_text("learning_rate: [1e-5,\n")
    (root / "list.yaml").write_text("- learning_rate\n- 1e-5\n")
    (root / "unknown-key.yaml").write_text(f"model_name_or_path: {root / 'tiny'}\nlearnig_rate: 1.0e-5\n")
    (root / "recipe-bad.yaml").write_text("description: d\nsource: s\narguments:\n  layer_decya: 0.9\n")
    return {"root": root, "tiny": root / "tiny", "glue": root / "glue"}


def fine_tune(world: dict[str, Path], *flags: str, data: bool = True, model: bool = True) -> list[str]:
    base = ["--output_dir", str(world["root"] / "out"), "--disable_tqdm", "true", "--max_steps", "2"]
    base += ["--max_seq_length", "32"] if "--max_seq_length" not in flags else []
    base += ["--model_name_or_path", str(world["tiny"])] if model else []
    base += ["--data_dir", str(world["glue"] / "RTE")] if data else []
    return [*base, *flags]


def inside(world: dict[str, Path], name: str) -> str:
    return str(world["root"] / name)


def with_results(world: dict[str, Path], content: str) -> None:
    (world["root"] / "out").mkdir(exist_ok=True)
    (world["root"] / "out" / "results.json").write_text(content)


def with_checkpoint_of_other_arguments(world: dict[str, Path]) -> None:
    """A checkpoint of the same command with --seed 99 (its arguments recorded as the job records them)."""
    out = world["root"] / "out"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / "trainer_state.json").write_text(
        json.dumps({"global_step": 4, "log_history": []})
    )
    recorded = parse_fine_tune_args(fine_tune(world, "--seed", "99"))
    recorded.data.pad_to_max_length = False  # as the job resolves it off XLA
    (out / "fine-tune-arguments.json").write_text(json.dumps(recorded.to_dict(), default=str))


# (name, argv of the fine-tune job given the world, what to set up first, words the error line must hold)
Case = tuple[
    str, Callable[[dict[str, Path]], list[str]], Callable[[dict[str, Path]], None] | None, tuple[str, ...]
]
FINE_TUNE_CASES: list[Case] = [
    ("unknown task", lambda w: fine_tune(w, "--task_name", "glue9", data=False), None, ("glue9", "cola", "wnli")),
    ("data dir missing", lambda w: fine_tune(w, "--data_dir", "/nonexistent/glue", data=False), None, ("/nonexistent/glue", "not a directory")),
    ("dev file missing", lambda w: fine_tune(w, "--data_dir", inside(w, "no-dev/RTE"), data=False), None, ("dev.tsv",)),
    ("malformed row", lambda w: fine_tune(w, "--data_dir", inside(w, "malformed/RTE"), data=False), None, ("train.tsv, line 7", "columns")),
    ("unknown label", lambda w: fine_tune(w, "--data_dir", inside(w, "unknown-label/RTE"), data=False), None, ("line 4", "'maybe'", "entailment")),
    ("wrong task for the directory", lambda w: fine_tune(w, "--task_name", "mrpc", "--data_dir", inside(w, "glue/RTE"), data=False), None, ("lacks column", "right task")),
    ("results already there", lambda w: fine_tune(w), lambda w: with_results(w, "{}"), ("results.json exists", "--overwrite_results")),
    ("an abbreviated flag", lambda w: fine_tune(w, "--max_step", "3"), None, ("--max_step", "did you mean --max_steps")),
    ("a mistyped flag", lambda w: fine_tune(w, "--lerning_rate", "1e-5"), None, ("--lerning_rate", "--learning_rate")),
    ("config syntax error", lambda w: [inside(w, "syntax.yaml")], None, ("syntax.yaml, line 2", "not valid YAML")),
    ("config is a list", lambda w: [inside(w, "list.yaml")], None, ("list.yaml holds a list", "mapping")),
    ("config unknown key", lambda w: [inside(w, "unknown-key.yaml")], None, ("learnig_rate", "did you mean learning_rate")),
    ("config file missing", lambda w: [inside(w, "nowhere.yaml")], None, ("nowhere.yaml does not exist",)),
    ("unknown recipe", lambda w: fine_tune(w, "--recipe", "no-such-recipe"), None, ("no-such-recipe", "mosbach2021")),
    ("recipe with an unknown argument", lambda w: fine_tune(w, "--recipe", inside(w, "recipe-bad.yaml")), None, ("layer_decya",)),
    ("negative learning rate", lambda w: fine_tune(w, "--learning_rate", "-1"), None, ("--learning_rate -1.0", ">= 0")),
    ("batch size 0", lambda w: fine_tune(w, "--per_device_train_batch_size", "0"), None, ("--per_device_train_batch_size 0", ">= 1")),
    ("eval batch size 0", lambda w: fine_tune(w, "--per_device_eval_batch_size", "0"), None, ("--per_device_eval_batch_size 0",)),
    ("negative max_train_samples", lambda w: fine_tune(w, "--max_train_samples", "-5"), None, ("--max_train_samples -5", "leave it out")),
    ("zero max_train_samples", lambda w: fine_tune(w, "--max_train_samples", "0"), None, ("--max_train_samples 0",)),
    ("zero max_eval_samples", lambda w: fine_tune(w, "--max_eval_samples", "0"), None, ("--max_eval_samples 0",)),
    ("zero max_seq_length", lambda w: fine_tune(w, "--max_seq_length", "0"), None, ("--max_seq_length 0", ">= 1")),
    ("negative reinit_layers", lambda w: fine_tune(w, "--reinit_layers", "-1"), None, ("--reinit_layers -1", ">= 0")),
    ("negative freeze_layers", lambda w: fine_tune(w, "--freeze_layers", "-3"), None, ("--freeze_layers -3",)),
    ("negative L2-SP", lambda w: fine_tune(w, "--l2sp_pretrained", "-1"), None, ("--l2sp_pretrained -1.0", ">= 0")),
    ("layer decay above 1", lambda w: fine_tune(w, "--layer_decay", "1.5"), None, ("--layer_decay 1.5", "(0, 1]")),
    ("Mixout probability 1", lambda w: fine_tune(w, "--mixout", "1.0"), None, ("--mixout 1.0", "[0, 1)")),
    ("negative warm-up", lambda w: fine_tune(w, "--warmup_steps", "-1"), None, ("--warmup_steps -1",)),
    ("zero epochs", lambda w: fine_tune(w, "--num_train_epochs", "0", "--max_steps", "-1"), None, ("--num_train_epochs 0",)),
    ("beta1 of 1", lambda w: fine_tune(w, "--adam_beta1", "1.0"), None, ("--adam_beta1 1.0", "[0, 1)")),
    ("early failure judged at 0", lambda w: fine_tune(w, "--early_failure_after", "0"), None, ("--early_failure_after 0",)),
    ("restarts above the budget", lambda w: fine_tune(w, "--restarts", "3", "--max_runs", "2"), None, ("--restarts 3 --max_runs 2",)),
    ("L2-SP overshoot", lambda w: fine_tune(w, "--optim", "adamw_l2sp", "--l2sp_pretrained", "2000", "--learning_rate", "1e-3"), None, ("= 2 > 1", "--l2sp_coupled")),
    ("L2-SP without AdamWL2SP", lambda w: fine_tune(w, "--l2sp_pretrained", "0.1"), None, ("--l2sp_pretrained", "--optim adamw_l2sp")),
    ("BERTAdam without AdamWL2SP", lambda w: fine_tune(w, "--bias_correction", "false"), None, ("--bias_correction false", "--optim adamw_l2sp")),
    ("a removed flag", lambda w: fine_tune(w, "--l2sp_novel", "0.01"), None, ("--l2sp_novel (removed in 0.2.0: use --l2sp_head_weight_decay)",)),
    ("spike roll-backs without roll-backs", lambda w: fine_tune(w, "--rollback_on_spikes", "true"), None, ("--rollback_on_spikes applies with --rollback_on_divergence",)),
    ("head weight decay without L2-SP", lambda w: fine_tune(w, "--l2sp_head_weight_decay", "0.01"), None, ("--l2sp_head_weight_decay", "--l2sp_pretrained")),
    ("re-init and freezing overlap", lambda w: fine_tune(w, "--reinit_layers", "1", "--freeze_layers", "2"), None, ("--reinit_layers 1 and --freeze_layers 2 overlap", "2-layer")),
    ("more layers than the model", lambda w: fine_tune(w, "--reinit_layers", "9"), None, ("--reinit_layers 9", "the model has 2 layers")),
    ("sequence longer than the model", lambda w: fine_tune(w, "--max_seq_length", "1024"), None, ("--max_seq_length 1024", "at most 128", "--max_seq_length 128")),
    ("local model path missing", lambda w: fine_tune(w, "--model_name_or_path", "/nonexistent/model", model=False), None, ("/nonexistent/model", "no such directory")),
    ("Latin-1 GLUE file", lambda w: fine_tune(w, "--data_dir", inside(w, "latin1/RTE"), data=False), None, ("train.tsv, line 3", "not UTF-8", "iconv")),
    ("Latin-1 CSV", lambda w: fine_tune(w, "--task_name", "rte", "--train_file", inside(w, "latin1.csv"), "--validation_file", inside(w, "ok.csv"), data=False), None, ("latin1.csv, line 2", "not UTF-8")),
    ("UTF-16 TSV", lambda w: fine_tune(w, "--task_name", "rte", "--train_file", inside(w, "utf16.tsv"), "--validation_file", inside(w, "ok.csv"), data=False), None, ("utf16.tsv is UTF-16", "iconv")),
    ("header-only TSV", lambda w: fine_tune(w, "--task_name", "rte", "--train_file", inside(w, "header.tsv"), "--validation_file", inside(w, "ok.csv"), data=False), None, ("header.tsv holds no rows",)),
    ("header-only CSV", lambda w: fine_tune(w, "--task_name", "rte", "--train_file", inside(w, "header.csv"), "--validation_file", inside(w, "ok.csv"), data=False), None, ("header.csv holds no rows",)),
    ("STS-B score nan", lambda w: fine_tune(w, "--task_name", "stsb", "--data_dir", inside(w, "stsb"), data=False), None, ("train.tsv, line 3", "'nan' is not a finite number")),
    ("subset seed without a subset", lambda w: fine_tune(w, "--train_subset_seed", "3"), None, ("--train_subset_seed", "--max_train_samples")),
    ("checkpoints of other arguments", lambda w: fine_tune(w), with_checkpoint_of_other_arguments, ("training.seed: 99 -> 42", "--resume_from_checkpoint false")),
    ("resume with nothing to resume", lambda w: fine_tune(w, "--resume_from_checkpoint", "true"), None, ("no complete checkpoint",)),
    ("resume from a missing checkpoint", lambda w: fine_tune(w, "--resume_from_checkpoint", "/nonexistent/checkpoint-3"), None, ("not a complete checkpoint",)),
    ("LoRA flag without LoRA", lambda w: fine_tune(w, "--lora_alpha", "16"), None, ("--lora_alpha", "--lora_r")),
    ("unknown pruning test", lambda w: fine_tune(w, "--prune", "always"), None, ("--prune", "invalid choice")),
    ("unknown optimizer", lambda w: fine_tune(w, "--optim", "adamw_fast"), None, ("--optim", "invalid choice")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "argv", "setup", "words"), FINE_TUNE_CASES, ids=[c[0] for c in FINE_TUNE_CASES]
)
def test_the_fine_tune_job_refuses_bad_input(world, capsys, name, argv, setup, words):
    out = world["root"] / "out"
    if out.exists():
        shutil.rmtree(out)
    if setup is not None:
        setup(world)
    before = sorted(p.name for p in out.iterdir()) if out.exists() else []
    with pytest.raises(SystemExit) as stopped:
        fine_tune_main(argv(world))
    assert stopped.value.code == 2, name
    captured = capsys.readouterr()
    line = captured.err.strip().splitlines()[-1]
    assert "error:" in line, captured.err[-2000:]
    for word in words:
        assert word in line, f"{name}: {word!r} not in {line!r}"
    assert "'loss'" not in captured.out  # no training step logged
    after = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert after == before  # nothing written: no checkpoint, no results.json


def study_file(tmp_path: Path, world: dict[str, Path], **keys) -> Path:
    import yaml

    content = {
        "name": "bad",
        "output_dir": str(tmp_path / "study"),
        "tasks": ["rte"],
        "recipes": ["devlin2019"],
        "seeds": "0-1",
        "arguments": {
            "model_name_or_path": str(world["tiny"]),
            "data_dir": str(world["glue"]),
            "max_seq_length": 32,
        },
    }
    content.update(keys)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


STUDY_CASES = [
    ("unknown study key", {"sedes": 3}, ("unknown study key", "sedes")),
    ("seed range backwards", {"seeds": "3-1"}, ("ends before it starts",)),
    ("unknown recipe", {"recipes": ["no-such-recipe"]}, ("no-such-recipe", "mosbach2021")),
    ("reserved argument", {"arguments": {"seed": 3}}, ("set per run by the study",)),
    ("unknown pruning test", {"prune": "always"}, ("prune must be one of",)),
    ("restarts beyond the budget", {"restarts": {"successes": 3, "max_runs": 2}}, ("successes <= max_runs",)),
    ("arguments the job rejects", {"arguments": {"not_a_flag": 1}}, ("fine-tune rejects", "not_a_flag")),
    (
        "an abbreviated flag in the file",
        {"arguments": {"max_step": 3}},
        ("fine-tune rejects", "did you mean --max_steps"),
    ),
]


@pytest.mark.parametrize(("name", "keys", "words"), STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_the_study_command_refuses_bad_input(tmp_path, world, capsys, name, keys, words):
    assert study_main(["run", str(study_file(tmp_path, world, **keys)), "--in-process"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    for word in words:
        assert word in line, f"{name}: {word!r} not in {line!r}"
    assert not (tmp_path / "study" / "study.sqlite").exists()  # refused before the store


def test_study_files_that_cannot_be_read(tmp_path, capsys):
    (tmp_path / "syntax.yaml").write_text("tasks: [rte\n")
    (tmp_path / "list.yaml").write_text("- rte\n")
    assert study_main(["run", str(tmp_path / "syntax.yaml")]) == 2
    assert "syntax.yaml, line 2: not valid YAML" in capsys.readouterr().err
    assert study_main(["run", str(tmp_path / "list.yaml")]) == 2
    assert "list.yaml holds a list" in capsys.readouterr().err


def test_status_of_a_study_that_never_ran_creates_nothing(tmp_path, world, capsys):
    path = study_file(tmp_path, world)
    assert study_main(["status", str(path)]) == 2
    error = capsys.readouterr().err
    assert "no study store" in error and "run the study first" in error
    assert not (tmp_path / "study").exists()


def test_a_damaged_store_says_how_to_recover(tmp_path, world, capsys):
    path = study_file(tmp_path, world)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.sqlite").write_bytes(b"this is no database" * 100)
    assert study_main(["status", str(path)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is damaged" in line and "tft-study rebuild" in line
