"""Study files and flags -> the grid of runs: seeds, order, run ids, argument precedence, early errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from transformers_fine_tuning.study import load_spec, parse_seeds, spec_from_mapping
from transformers_fine_tuning.study.cli import _flags_to_arguments
from transformers_fine_tuning.study.run.spec import arguments_to_flags


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, (3,)),
        ("0-4", (0, 1, 2, 3, 4)),
        ("0-2,10,12-13", (0, 1, 2, 10, 12, 13)),
        ([5, "1-2", 5], (5, 1, 2)),  # order kept, repeats dropped
        (" 7 ", (7,)),
    ],
)
def test_parse_seeds(value, expected):
    assert parse_seeds(value) == expected


@pytest.mark.parametrize("value", ["4-2", "a", "", [], "1.5", True])
def test_parse_seeds_rejects(value):
    with pytest.raises(ValueError):
        parse_seeds(value)


def test_grid_order_ids_and_arguments(tmp_path):
    spec = spec_from_mapping(
        {
            "output_dir": str(tmp_path / "s"),
            "tasks": [
                "rte",
                {"name": "mrpc-small", "task_name": "MRPC", "arguments": {"max_train_samples": 64}},
            ],
            "recipes": [
                "devlin2019",
                {"name": "llrd-0.9", "recipe": "llrd", "arguments": {"layer_decay": 0.9}},
            ],
            "seeds": "0-1",
            "data_seeds": [7, 8],
            "arguments": {"model_name_or_path": "some/hub-id", "data_dir": "data", "max_train_samples": 32},
        },
        default_name="grid",
    )
    cells = spec.cells()
    assert len(cells) == 2 * 2 * 2 * 2  # tasks × recipes × seeds × data seeds
    # seeds outermost: the first four cells are every task × recipe of (seed 0, data seed 7)
    assert [cell.run_id for cell in cells[:4]] == [
        "rte/devlin2019/seed0-data7",
        "rte/llrd-0.9/seed0-data7",
        "mrpc-small/devlin2019/seed0-data7",
        "mrpc-small/llrd-0.9/seed0-data7",
    ]
    assert [cell.position for cell in cells] == list(range(16))
    assert len({cell.run_id for cell in cells}) == 16
    cell = next(c for c in cells if c.run_id == "mrpc-small/llrd-0.9/seed1-data8")
    argv = cell.fine_tune_argv()
    # the recipe comes first, so that every explicit flag after it overrides the recipe file
    assert argv[:2] == ["--recipe", "llrd"]
    assert argv[argv.index("--task_name") + 1] == "mrpc"
    assert argv[argv.index("--seed") + 1] == "1" and argv[argv.index("--data_seed") + 1] == "8"
    # precedence: study < task < recipe entry; argparse keeps the last occurrence
    values = [argv[i + 1] for i, flag in enumerate(argv) if flag == "--max_train_samples"]
    assert values[-1] == "64"
    assert argv[argv.index("--layer_decay") + 1] == "0.9"
    assert argv[argv.index("--data_dir") + 1] == str((Path.cwd() / "data").resolve())  # made absolute
    assert argv[argv.index("--model_name_or_path") + 1] == "some/hub-id"  # not a local path: a Hub id
    assert argv[argv.index("--disable_tqdm") + 1] == "true"  # the study default
    assert Path(cell.output_dir) == tmp_path / "s" / "runs" / "mrpc-small" / "llrd-0.9" / "seed1-data8"
    assert spec.baseline == "devlin2019" and spec.name == "grid"


def test_config_hash_is_stable_and_tracks_arguments(tmp_path):
    base = {"output_dir": str(tmp_path), "tasks": ["rte"], "recipes": ["l2sp"], "seeds": [0]}
    first = spec_from_mapping(base).cells()[0]
    again = spec_from_mapping(base).cells()[0]
    changed = spec_from_mapping({**base, "arguments": {"learning_rate": 3e-5}}).cells()[0]
    assert first.config_hash == again.config_hash
    assert first.config_hash != changed.config_hash and first.run_id == changed.run_id


def test_data_seeds_default_to_the_seed(tmp_path):
    spec = spec_from_mapping({"output_dir": str(tmp_path), "tasks": "rte", "recipes": "llrd", "seeds": "3-4"})
    assert [(cell.seed, cell.data_seed) for cell in spec.cells()] == [(3, 3), (4, 4)]


def test_user_recipe_file(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("description: mine\nsource: me\narguments:\n  layer_decay: 0.8\n  optim: adamw_l2sp\n")
    spec = spec_from_mapping(
        {"output_dir": str(tmp_path), "tasks": ["rte"], "recipes": [str(recipe)], "seeds": 0}
    )
    assert spec.recipes[0].name == "mine" and spec.recipes[0].recipe == str(recipe.resolve())
    assert spec.cells()[0].run_id == "rte/mine/seed0-data0"


def test_file_and_overrides(tmp_path):
    path = tmp_path / "rte-study.yaml"
    path.write_text(
        "tasks: [rte]\nrecipes: [devlin2019, llrd]\nseeds: 0-9\narguments: {max_seq_length: 64}\n"
    )
    spec = load_spec(path, {"seeds": "0-1", "baseline": "llrd", "arguments": {"learning_rate": 1e-5}})
    assert spec.name == "rte-study" and spec.seeds == (0, 1) and spec.baseline == "llrd"
    assert spec.arguments == {"max_seq_length": 64, "learning_rate": 1e-5}  # merged, not replaced
    assert spec.output_dir == (Path("runs") / "studies" / "rte-study").resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tasks": ["nope"]}, "unknown GLUE task"),
        ({"recipes": ["nope"]}, "Unknown recipe"),
        ({"seeds": "5-1"}, "ends before it starts"),
        ({"baseline": "llrd"}, "baseline"),
        ({"arguments": {"seed": 3}}, "set per run by the study"),
        ({"recipes": ["llrd", "llrd"]}, "appear twice"),
        ({"colour": "red"}, "unknown study key"),
        ({"recipes": [{"name": "a/b", "recipe": "llrd"}]}, "letters, digits"),
        ({"tasks": []}, "needs `tasks`"),
    ],
)
def test_invalid_studies_fail_early(tmp_path, change, message):
    study = {
        "output_dir": str(tmp_path),
        "tasks": ["rte"],
        "recipes": ["devlin2019"],
        "seeds": "0-1",
        **change,
    }
    with pytest.raises(ValueError, match=message):
        spec_from_mapping(study)


def test_flags_round_trip():
    flags = [
        "--max_seq_length",
        "64",
        "--fp16",
        "--report_to",
        "none",
        "tensorboard",
        "--lr=2e-5",
        "--x",
        "true",
    ]
    arguments = _flags_to_arguments(flags)
    assert arguments == {
        "max_seq_length": "64",
        "fp16": True,
        "report_to": ["none", "tensorboard"],
        "lr": "2e-5",
        "x": "true",
    }
    assert arguments_to_flags({"max_seq_length": 64, "fp16": False, "report_to": ["none"], "skip": None}) == [
        "--max_seq_length",
        "64",
        "--fp16",
        "false",
        "--report_to",
        "none",
    ]


def test_tasks_of_your_own_data_replace_the_studys_data_source(tmp_path):
    own = {"train_file": "mine/train.csv", "validation_file": "mine/dev.csv", "label_column": "stars"}
    spec = spec_from_mapping(
        {
            "output_dir": str(tmp_path),
            "tasks": [
                "rte",
                {"name": "reviews", "arguments": own},
                {"name": "v2", "task_name": "reviews-v2", "arguments": {"dataset_name": "org/set"}},
            ],
            "recipes": ["devlin2019"],
            "seeds": 0,
            "arguments": {"data_dir": "glue", "max_train_samples": 32},
        }
    )
    assert [(task.name, task.task_name) for task in spec.tasks] == [
        ("rte", "rte"),
        ("reviews", "reviews"),
        ("v2", "reviews-v2"),
    ]
    rte, reviews, v2 = (cell.fine_tune_argv() for cell in spec.cells())
    assert rte[rte.index("--data_dir") + 1] == str((Path.cwd() / "glue").resolve())
    assert "--data_dir" not in reviews and "--data_dir" not in v2  # their own source replaces the study's
    assert reviews[reviews.index("--train_file") + 1] == str((Path.cwd() / "mine" / "train.csv").resolve())
    assert reviews[reviews.index("--task_name") + 1] == "reviews" and "--label_column" in reviews
    assert v2[v2.index("--dataset_name") + 1] == "org/set"  # not a local path: a Hub id
    assert all(cell.count("--max_train_samples") == 1 for cell in (rte, reviews, v2))


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            ["sentiment"],
            r"task 'sentiment': unknown GLUE task 'sentiment'; valid tasks are: .* give its data",
        ),
        (
            [{"name": "rte", "arguments": {"text_column": "t"}}],
            r"task 'rte': --text_column describe\(s\) a data",
        ),
        (
            [{"name": "mine", "arguments": {"data_dir": "d"}}],
            r"task 'mine': --data_dir is GLUE's distribution",
        ),
    ],
)
def test_a_task_and_its_data_must_fit(tmp_path, tasks, message):
    with pytest.raises(ValueError, match=message):
        spec_from_mapping({"output_dir": str(tmp_path), "tasks": tasks, "recipes": ["llrd"], "seeds": 0})
