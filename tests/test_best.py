"""Best and last: the best evaluation beside the final score, chosen on held-out training data when asked, kept in
results.json (and derived for older files), and a study that summarises either."""

from __future__ import annotations

import pytest

from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.best import BEST_HELD_OUT, best_score
from transformers_fine_tuning.results import Evaluation, RunResults
from transformers_fine_tuning.study.analysis.scores import score_note, scored_runs
from transformers_fine_tuning.study.run.store import COMPLETED, RunRecord


def _evaluations(dev: list[float], held_out: list[float] | None = None) -> list[Evaluation]:
    evaluations = [Evaluation(10 * (i + 1), None, "validation", {"accuracy": v}) for i, v in enumerate(dev)]
    for i, value in enumerate(held_out or []):
        evaluations.append(Evaluation(10 * (i + 1), None, BEST_HELD_OUT, {"accuracy": value}))
    return evaluations


def test_the_best_is_chosen_on_the_held_out_split_and_reported_on_dev():
    evaluations = _evaluations([0.60, 0.66, 0.62], held_out=[0.70, 0.68, 0.70])
    on_dev = best_score(evaluations, "accuracy", "validation")
    assert (on_dev.step, on_dev.value, on_dev.optimistic) == (20, 0.66, True)
    held = best_score(evaluations, "accuracy", "validation", select_on=BEST_HELD_OUT)
    # the held-out split ties at steps 10 and 30: the first is taken; dev's score there is reported
    assert (held.step, held.value, held.selection_value, held.optimistic) == (10, 0.60, 0.70, False)
    assert best_score([], "accuracy", "validation") is None


def test_an_older_results_file_gets_its_best_from_its_evaluations(tmp_path):
    content = {
        "schema_version": 3,
        "status": "completed",
        "task": "rte",
        "model": "m",
        "seed": 0,
        "data_seed": 0,
        "main_metric": {"name": "accuracy", "split": "validation", "value": 0.62},
        "failed": False,
        "metrics": {"validation": {"accuracy": 0.62}},
        "constant_baseline": {"validation": {"accuracy": 0.53}},
        "global_step": 30,
        "evaluations": [
            {"step": e.step, "epoch": None, "split": e.split, "metrics": e.metrics}
            for e in _evaluations([0.60, 0.66, 0.62])
        ],
    }
    results = RunResults.from_dict(content)
    assert (results.best.step, results.best.value, results.best.optimistic) == (20, 0.66, True)
    assert RunResults.from_dict(results.to_dict()).best == results.best  # written and read back


def _run(seed: int, final: float, dev: list[float], held_out: list[float] | None = None) -> RunRecord:
    return RunRecord(
        run_id=f"rte/r/seed{seed}-data{seed}",
        position=seed,
        argv=(),
        config_hash="0",
        output_dir="/nowhere",
        task="rte",
        recipe="r",
        seed=seed,
        data_seed=seed,
        status=COMPLETED,
        main_metric_name="accuracy",
        main_metric_split="validation",
        main_metric=final,
        constant_baseline=0.53,
        failed_run=final <= 0.53,
        failure_rule="at_or_below_constant" if final <= 0.53 else None,
        evaluations=_evaluations(dev, held_out),
    )


def test_a_study_summarises_the_best_score_judged_again():
    runs = [
        _run(0, 0.50, [0.58, 0.55, 0.50]),  # failed at the end, not at its best
        _run(1, 0.62, [0.52, 0.62, 0.62]),
    ]
    best = scored_runs(runs, "best")
    assert [run.main_metric for run in best] == [0.58, 0.62]
    assert [run.failed_run for run in best] == [False, False] and best[0].failure_rule is None
    assert scored_runs(runs, "final") == runs
    assert "optimistic" in score_note(runs, "best") and score_note(runs, "final") is None
    held = [_run(0, 0.50, [0.58, 0.52], held_out=[0.60, 0.70])]
    assert scored_runs(held, "best")[0].main_metric == 0.52  # chosen on the held-out split: step 20
    assert "held-out part" in score_note(held, "best")
    with pytest.raises(ValueError, match="one of final, best"):
        scored_runs(runs, "median")


def test_the_flag(tmp_path):
    out = ["--output_dir", str(tmp_path)]
    assert parse_fine_tune_args(["--best_held_out", "0.1", *out]).fine_tuning.best_held_out == 0.1
    for flags, message in [
        (["--best_held_out", "1.5"], r"--best_held_out 1.5: must be in \(0, 1\)"),
        (["--best_held_out", "0.1", "--wise_ft_alphas", "0,1"], "give one of them"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_fine_tune_args([*flags, *out])


def test_the_job_chooses_its_best_on_held_out_training_data(tmp_path, tiny_bert_dir, glue_dir):
    from transformers_fine_tuning.fine_tune import prepare, run

    args = parse_fine_tune_args(
        [
            *(
                "--model_name_or_path",
                tiny_bert_dir,
                "--task_name",
                "rte",
                "--data_dir",
                str(glue_dir / "RTE"),
            ),
            *("--max_train_samples", "40", "--max_eval_samples", "16", "--max_seq_length", "32"),
            *("--max_steps", "6", "--per_device_train_batch_size", "8", "--eval_strategy", "steps"),
            *("--eval_steps", "2", "--best_held_out", "0.25", "--use_cpu", "true", "--disable_tqdm", "true"),
            *("--output_dir", str(tmp_path / "run")),
        ]
    )
    setup = prepare(args)
    held_out = setup.raw[BEST_HELD_OUT]
    assert len(held_out) == 10 and len(setup.raw["train"]) == 30
    assert not set(held_out["idx"]) & set(setup.raw["train"]["idx"])  # never trained on
    _, results = run(args, setup)
    assert results.best.selected_on == BEST_HELD_OUT and not results.best.optimistic
    steps = {e.step for e in results.evaluations if e.split == BEST_HELD_OUT}
    assert results.best.step in steps and steps >= {2, 4, 6}
    dev = {e.step: e.metrics["accuracy"] for e in results.evaluations if e.split == "validation"}
    assert results.best.value == dev[results.best.step]
    assert results.main_metric.split == "validation"  # the reported split is still dev
