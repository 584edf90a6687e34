"""Studies that decide: restarts until success (seeds drawn as needed, never past the budget), pruning a run that
cannot learn end to end, and the study keys that turn them on."""

from __future__ import annotations

import textwrap

import pytest

from transformers_fine_tuning.results import Evaluation
from transformers_fine_tuning.study import RunRecord, StudyStore, load_spec, spec_from_mapping, summarize
from transformers_fine_tuning.study.analysis.pruning import (
    early_verdicts,
    measure_pruning,
    measure_relative_pruning,
    relative_verdicts,
    render_pruning,
)
from transformers_fine_tuning.study.cli import main

# A fine-tune script of a user's (--script): the package's parser, and results whose verdict is fixed by the
# seed and recipe: "lucky" succeeds from seed 2 on, "hopeless" never does.
SCRIPT = textwrap.dedent(
    """
    from transformers_fine_tuning.arguments import parse_fine_tune_args
    from transformers_fine_tuning.results import MainMetric, RunResults, write_results


    def run(args):
        seed, recipe = args.training.seed, args.recipe.name
        failed = recipe == "hopeless" or seed < 2
        value = 0.5 if failed else 0.7
        results = RunResults(
            status="completed", task="rte", model="m", seed=seed, data_seed=seed, recipe=recipe,
            main_metric=MainMetric("accuracy", "validation", value), failed=failed,
            metrics={"validation": {"accuracy": value}}, constant_baseline={"validation": {"accuracy": 0.527}},
            global_step=1, wall_time_s=10.0, predictions={"validation": [0, 1, 1]},
        )
        write_results(args.training.output_dir + "/results.json", results)
        return None, results
    """
)


def recipe_file(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"description: {name}\nsource: a test\narguments:\n  learning_rate: 1.0e-5\n")
    return str(path)


def test_restarts_draw_seeds_until_success_within_the_budget(tmp_path, capsys):
    (tmp_path / "script.py").write_text(SCRIPT)
    spec = {
        "name": "restarts",
        "output_dir": str(tmp_path / "study"),
        "tasks": ["rte"],
        "recipes": [recipe_file(tmp_path, "lucky"), recipe_file(tmp_path, "hopeless")],
        "seeds": "0-9",
        "restarts": {"successes": 1, "max_runs": 4},
        "arguments": {"data_dir": str(tmp_path)},
    }
    path = tmp_path / "restarts.yaml"
    path.write_text(__import__("yaml").safe_dump(spec))
    assert main(["run", str(path), "--in-process", "--script", str(tmp_path / "script.py")]) == 0
    out = capsys.readouterr().out
    assert "restarts until 1 success(es) per task × recipe, at most 4 runs" in out
    with StudyStore(load_spec(path).store_path) as store:
        runs = {(run.recipe, run.seed): run for run in store.runs()}
        assert len(store.runs(include_inactive=True)) == 7  # only the seeds it drew
    assert sorted(seed for recipe, seed in runs if recipe == "lucky") == [0, 1, 2]  # stops at its success
    assert sorted(seed for recipe, seed in runs if recipe == "hopeless") == [0, 1, 2, 3]  # the whole budget
    summary = (tmp_path / "study" / "summary.md").read_text()
    assert "| lucky | 0.5667 |" in summary  # E[best of 1] of 0.5, 0.5, 0.7
    assert "| hopeless ⚠ |" in summary and "hopeless failed 4 of 4 runs" in summary
    # compute per success: all of lucky's 3 runs bought its 1 success; hopeless bought none
    lucky, hopeless = summarize(list(runs.values()), baseline="lucky", recipes=["lucky", "hopeless"])
    assert lucky.compute_s == pytest.approx(
        sum(run.wall_time_s for (recipe, _), run in runs.items() if recipe == "lucky")
    )
    assert lucky.compute_per_success_s == lucky.compute_s > 0 and hopeless.compute_per_success_s is None
    # the same command again: nothing new to draw
    assert main(["run", str(path), "--in-process", "--script", str(tmp_path / "script.py")]) == 0
    assert "7 runs in the study" in capsys.readouterr().out


def test_study_keys_for_pruning_restarts_and_seeds(tmp_path):
    spec = spec_from_mapping(
        {
            "output_dir": str(tmp_path),
            "tasks": ["rte"],
            "recipes": ["devlin2019"],
            "seeds": "0-1",
            "dropout_seeds": [7, 8],
            "subset_seeds": [3],
            "prune": "dev",
            "restarts": {"successes": 2},
            "target_score": 0.6,
            "arguments": {"max_train_samples": 100},
        }
    )
    assert spec.arguments["prune"] == "dev" and spec.restarts.successes == 2 and spec.restarts.max_runs == 20
    cells = spec.cells()
    assert [cell.run_id for cell in cells] == [
        "rte/devlin2019/seed0-data0-subset3-dropout7",
        "rte/devlin2019/seed0-data0-subset3-dropout8",
        "rte/devlin2019/seed1-data1-subset3-dropout7",
        "rte/devlin2019/seed1-data1-subset3-dropout8",
    ]
    argv = cells[1].fine_tune_argv()
    assert (
        argv[argv.index("--train_subset_seed") + 1] == "3" and argv[argv.index("--dropout_seed") + 1] == "8"
    )
    assert argv[argv.index("--prune") + 1] == "dev"
    for bad, message in (
        ({"prune": "always"}, "prune must be one of"),
        ({"restarts": {"successes": 3, "max_runs": 2}}, "successes <= max_runs"),
        ({"dropout_seeds": [1], "arguments": {"dropout_seed": 2}}, "remove dropout_seed"),
    ):
        with pytest.raises(ValueError, match=message):
            spec_from_mapping({"tasks": ["rte"], "recipes": ["devlin2019"], "seeds": 0, **bad})


def test_a_run_that_cannot_learn_is_pruned_and_restarted(write_study, capsys):
    """The real job: a recipe variant at learning rate 0 never leaves the label prior's loss, so the loss test
    stops every seed it draws; the study spends its budget of 2 runs and counts both as failed, pruned."""
    path = write_study(
        "pruned",
        recipes=[{"name": "cannot-learn", "recipe": "devlin2019", "arguments": {"learning_rate": 0.0}}],
        seeds="0-5",
        prune="loss",
        restarts={"successes": 1, "max_runs": 2},
    )
    assert main(["run", str(path), "--in-process"]) == 0
    with StudyStore(load_spec(path).store_path) as store:
        runs = store.runs()
    assert [(run.seed, run.status, run.failed_run, run.stopped_early) for run in runs] == [
        (0, "completed", True, "early_failure"),
        (1, "completed", True, "early_failure"),
    ]
    summary = (load_spec(path).output_dir / "summary.md").read_text()
    assert "| cannot-learn (baseline) ⚠ | 2 |" in summary and "| 2 (2 pruned) [0.16, 1.00] |" in summary


def run_record(seed: int, failed: bool, *, loss_flag_at: int | None, first_dev: float) -> RunRecord:
    """A completed run of 100 steps and 1000 s whose loss test flagged it at ``loss_flag_at`` (or not) and
    whose first dev evaluation, at step 20, scored ``first_dev`` (majority baseline 0.5)."""
    return RunRecord(
        run_id=f"rte/r/seed{seed}-data{seed}", position=seed, task="rte", recipe="r", seed=seed, data_seed=seed,
        status="completed", attempts=1, output_dir="/nowhere", config_hash="0", argv=(),
        main_metric_name="accuracy", main_metric_split="validation", main_metric=0.5 if failed else 0.7,
        constant_baseline=0.5, failed_run=failed, wall_time_s=1000.0, global_step=100,
        evaluations=[Evaluation(20, 1.0, "validation", {"accuracy": first_dev}), Evaluation(100, 5.0, "validation", {"accuracy": 0.6})],
        diagnostics={"early_failure": {"flagged": loss_flag_at is not None, "step": loss_flag_at or 30}},
    )  # fmt: skip


def test_pruning_measurement_by_hand():
    runs = [
        run_record(0, True, loss_flag_at=30, first_dev=0.5),  # both tests catch a failure
        run_record(1, True, loss_flag_at=None, first_dev=0.45),  # only the dev test does
        run_record(2, False, loss_flag_at=30, first_dev=0.6),  # the loss test throws a success away
        run_record(3, False, loss_flag_at=None, first_dev=0.65),  # nobody flags a success
        run_record(4, True, loss_flag_at=None, first_dev=0.55),  # a failure nobody sees early
    ]
    assert early_verdicts(runs[0]) == {"loss": 30, "dev": 20} and early_verdicts(runs[3]) == {
        "loss": None,
        "dev": None,
    }
    loss, dev, both = measure_pruning(runs)
    assert (loss.flagged, loss.true_positives, loss.precision, loss.recall) == (2, 1, 0.5, 1 / 3)
    assert loss.successes_lost == 1 and loss.saved_s == pytest.approx(2 * 1000 * 0.7)
    assert (dev.flagged, dev.true_positives, dev.precision, dev.recall) == (2, 2, 1.0, 2 / 3)
    assert dev.saved_s == pytest.approx(2 * 1000 * 0.8) and dev.compute_s == 5000
    assert (both.flagged, both.true_positives) == (3, 2)
    assert both.saved_s == pytest.approx(1000 * 0.8 + 1000 * 0.8 + 1000 * 0.7)  # each at its earliest flag
    table = render_pruning([loss, dev, both])
    assert "| dev | 2 of 5 | 1.00 | 0.67 | 0 | – | 0.44 h (32%) |" in table
    assert "3 of the 5 completed runs ended failed" in table


def test_relative_pruning_compares_runs_with_each_other():
    """At 20 % of the steps the five runs' first evaluations rank 3 (0.65), 2 (0.6), 4 (0.55), 0 (0.5), 1 (0.45):
    keeping half (3 of 5) stops runs 0 and 1 — both failed — at step 20, and keeps the best final run (3, 0.7,
    tied with 2: the first)."""
    runs = [
        run_record(0, True, loss_flag_at=30, first_dev=0.5),
        run_record(1, True, loss_flag_at=None, first_dev=0.45),
        run_record(2, False, loss_flag_at=30, first_dev=0.6),
        run_record(3, False, loss_flag_at=None, first_dev=0.65),
        run_record(4, True, loss_flag_at=None, first_dev=0.55),
    ]
    assert relative_verdicts(runs, 0.2, 0.5) == {runs[0].run_id: 20, runs[1].run_id: 20}
    # keeping one in five: only the best early run goes on; the slow starter 2 (a success) is thrown away
    assert set(relative_verdicts(runs, 0.2, 0.2)) == {runs[i].run_id for i in (0, 1, 2, 4)}
    # after the first evaluation (20 % < 0.3): the next one is the last step, so nobody is stopped
    assert relative_verdicts(runs, 0.3, 0.5) == {}
    [measured] = measure_relative_pruning(runs, fractions=(0.2,), keep=0.5)
    assert (measured.flagged, measured.true_positives, measured.precision, measured.recall) == (
        2,
        2,
        1.0,
        2 / 3,
    )
    assert measured.successes_lost == 0 and (measured.best_kept, measured.groups) == (1, 1)
    assert measured.saved_s == pytest.approx(2 * 1000 * 0.8)
    assert "| relative f=0.2 keep 0.5 | 2 of 5 | 1.00 | 0.67 | 0 | 1 of 1 | 0.44 h (32%) |" in render_pruning(
        [measured]
    )
    with pytest.raises(ValueError, match="fraction must be in"):
        relative_verdicts(runs, 1.0, 0.5)


SEQUENTIAL_SCRIPT = SCRIPT.replace(
    'failed = recipe == "hopeless" or seed < 2\n    value = 0.5 if failed else 0.7',
    'value = {"better": 0.7, "same": 0.6}.get(recipe, 0.6) + 0.001 * seed\n    failed = False',
)


def test_until_decided_adds_seeds_in_rounds_until_the_comparison_is_decided(tmp_path, capsys):
    """better beats the baseline in every run: 4 against 4 (Mann–Whitney p = 0.029) is not enough at the first
    look, where O'Brien–Fleming spending allows 0.0007; 8 against 8 (p = 0.00016) is, under 0.0157: the study
    stops at 8 of its 12 seeds and says so."""
    (tmp_path / "script.py").write_text(SEQUENTIAL_SCRIPT)
    spec = {
        "name": "sequential",
        "output_dir": str(tmp_path / "study"),
        "tasks": ["rte"],
        "recipes": [recipe_file(tmp_path, "base"), recipe_file(tmp_path, "better")],
        "seeds": "0-11",
        "until_decided": {"round": 4},
        "arguments": {"data_dir": str(tmp_path)},
    }
    path = tmp_path / "sequential.yaml"
    path.write_text(__import__("yaml").safe_dump(spec))
    assert main(["run", str(path), "--in-process", "--script", str(tmp_path / "script.py")]) == 0
    assert "until decided: 4 seeds a recipe a round, at most 12" in capsys.readouterr().out
    with StudyStore(load_spec(path).store_path) as store:
        runs = store.runs()
    assert sorted((run.recipe, run.seed) for run in runs) == sorted(
        (recipe, seed) for recipe in ("base", "better") for seed in range(8)
    )
    summary = (tmp_path / "study" / "summary.md").read_text()
    assert (
        "Sequential: every comparison decided after 8 runs a recipe (look 2, O'Brien–Fleming spending"
        in summary
    )


def test_sequential_state_by_hand():
    from transformers_fine_tuning.study.analysis.sequential import next_runs_per_recipe, sequential_state
    from transformers_fine_tuning.study.run.spec import UntilDecided

    def runs(recipe, values):
        return [run_record(i, False, loss_flag_at=None, first_dev=0.6).__class__(
            **{**run_record(i, False, loss_flag_at=None, first_dev=0.6).__dict__, "recipe": recipe,
               "run_id": f"rte/{recipe}/{i}", "main_metric": value})
            for i, value in enumerate(values)]  # fmt: skip

    rule = UntilDecided(4)
    same = runs("base", [0.6 + 0.001 * i for i in range(12)]) + runs(
        "same", [0.6 + 0.001 * i for i in range(12)]
    )
    state = sequential_state(same, ["base", "same"], "base", 12, rule)
    assert state.looks == (4, 8, 12) and state.undecided == ("same",) and state.done
    assert next_runs_per_recipe(
        state, rule
    ) == 12 and "not decided within 12 runs a recipe (same" in state.sentence(rule)
    # after one round with nothing decided: one more round
    early = sequential_state(same[:4] + same[12:16], ["base", "same"], "base", 12, rule)
    assert early.looks == (4,) and not early.done and next_runs_per_recipe(early, rule) == 8
    # nothing run yet: the first round
    assert next_runs_per_recipe(sequential_state([], ["base", "same"], "base", 12, rule), rule) == 4
    with pytest.raises(ValueError, match="round >= 2"):
        UntilDecided(1)
    with pytest.raises(ValueError, match="until_decided and restarts"):
        spec_from_mapping({"tasks": ["rte"], "recipes": ["devlin2019"], "seeds": "0-3",
                           "until_decided": {"round": 2}, "restarts": {"successes": 1}})  # fmt: skip
