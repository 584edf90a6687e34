"""The savings a study's runs make outside training change nothing they measure: length-sorted evaluation gives
the same metrics and the same predictions, stored in the dev set's own order."""

from __future__ import annotations

from pathlib import Path

import pytest

from transformers_fine_tuning.arguments import parse_fine_tune_args
from transformers_fine_tuning.evaluation import PredictionRecorder, sort_by_length
from transformers_fine_tuning.fine_tune import prepare, run

FIXTURES = Path(__file__).resolve().parent / "glue" / "fixtures"
QUICK = [
    "--max_train_samples", "32", "--max_seq_length", "128", "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "16", "--num_train_epochs", "1", "--learning_rate", "5e-5",
    "--disable_tqdm", "true", "--use_cpu", "true", "--report_to", "none", "--seed", "3",
]  # fmt: skip


def _argv(model: str, data_dir: Path, output_dir: Path, *flags: str) -> list[str]:
    paths = ["--model_name_or_path", model, "--data_dir", str(data_dir), "--output_dir", str(output_dir)]
    return [*paths, *QUICK, *flags]


def _run(model: str, data_dir: Path, output_dir: Path, *flags: str):
    args = parse_fine_tune_args(_argv(model, data_dir, output_dir, *flags))
    setup = prepare(args)
    return setup, run(args, setup)[1]


def test_sort_by_length_orders_longest_first_and_keeps_ties_in_order():
    from datasets import Dataset

    dataset = Dataset.from_dict(
        {"input_ids": [[1], [1, 2, 3], [1, 2], [4, 5, 6], [7]], "idx": [0, 1, 2, 3, 4]}
    )
    ordered, order = sort_by_length(dataset)
    assert order == [1, 3, 2, 0, 4]
    assert ordered["idx"] == order


def test_recorder_puts_predictions_back_in_the_split_order():
    recorder = PredictionRecorder(lambda _: {}, ["validation"], orders={"validation": [2, 0, 1]})
    assert recorder._in_split_order("validation", ["c", "a", "b"]) == ["a", "b", "c"]
    assert recorder._in_split_order("test", ["c", "a", "b"]) == ["c", "a", "b"]  # not reordered


def test_length_sorted_evaluation_changes_no_metric_and_no_prediction(tmp_path, minilm_path, glue_dir):
    """The real MiniLM on 96 real MRPC dev pairs (lengths 20 to 80 tokens): sorted and unsorted evaluation agree
    on every prediction and metric, and the sorted one pads fewer tokens."""
    flags = ("--task_name", "mrpc", "--max_eval_samples", "96")
    sorted_setup, sorted_results = _run(minilm_path, glue_dir / "MRPC", tmp_path / "sorted", *flags)
    plain_setup, plain_results = _run(
        minilm_path, glue_dir / "MRPC", tmp_path / "plain", *flags, "--sort_eval_by_length", "false"
    )
    evaluated = sorted_setup.trainer.eval_dataset["validation"]
    lengths = [len(ids) for ids in evaluated["input_ids"]]
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 10
    assert plain_setup.trainer.eval_dataset["validation"]["idx"] == sorted(evaluated["idx"])

    assert sorted_results.predictions == plain_results.predictions
    assert _same_metrics(sorted_results.metrics, plain_results.metrics)
    assert sorted_results.main_metric.value == plain_results.main_metric.value
    assert len(set(sorted_results.predictions["validation"])) == 2  # a model that tells the classes apart

    def padded_tokens(lengths: list[int], batch: int = 16) -> int:
        return sum(
            max(lengths[i : i + batch]) * len(lengths[i : i + batch]) for i in range(0, len(lengths), batch)
        )

    in_dataset_order = [len(ids) for ids in plain_setup.trainer.eval_dataset["validation"]["input_ids"]]
    assert padded_tokens(lengths) < 0.8 * padded_tokens(in_dataset_order)


def _same_metrics(a: dict, b: dict) -> bool:
    """The same metrics, exactly; the same mean loss to float rounding (summed over batches of other shapes);
    the Trainer's timings (``runtime``, ``*_per_second``) aside."""
    timed = ("runtime", "samples_per_second", "steps_per_second")
    for split in a.keys() | b.keys():
        left, right = ({k: v for k, v in m[split].items() if k not in timed} for m in (a, b))
        if left.pop("loss") != pytest.approx(right.pop("loss"), rel=1e-6) or left != right:
            return False
    return True


@pytest.mark.parametrize(("task", "folder"), [("stsb", "STS-B")])
def test_length_sorted_evaluation_of_a_regression_task(tmp_path, tiny_bert_dir, task, folder):
    """A regression head's scores come back in dataset order too; the Pearson correlation agrees to float
    rounding (batches of other shapes sum in another order)."""
    flags = ("--task_name", task)
    _, sorted_results = _run(tiny_bert_dir, FIXTURES / folder, tmp_path / "sorted", *flags)
    _, plain_results = _run(
        tiny_bert_dir, FIXTURES / folder, tmp_path / "plain", *flags, "--sort_eval_by_length", "false"
    )
    assert sorted_results.predictions["validation"] == pytest.approx(
        plain_results.predictions["validation"], abs=1e-5
    )
    # the correlation of a few dozen scores amplifies their rounding: 1.2e-5 apart once, on a loaded 2-core CPU;
    # scores out of order would be ~0.1 apart
    assert sorted_results.main_metric.value == pytest.approx(plain_results.main_metric.value, abs=1e-4)


def test_timings_cover_the_run_and_sum_to_its_wall_time(tmp_path, tiny_bert_dir):
    """Called with ``argv`` from a running process, the job's phases (start-up 0) add up to the wall time of the
    call within a few percent; the evaluations inside training are counted as evaluation, each one listed."""
    import json
    import time

    from transformers_fine_tuning.fine_tune import main

    output_dir = tmp_path / "timed"
    argv = _argv(
        tiny_bert_dir, FIXTURES / "SST-2", output_dir, "--task_name", "sst2", "--num_train_epochs", "2"
    )
    argv += ["--eval_strategy", "epoch"]
    started = time.perf_counter()
    assert main(argv) == 0
    wall_s = time.perf_counter() - started
    timings = json.loads((output_dir / "results.json").read_text())["timings"]
    phases = {key: value for key, value in timings.items() if key not in ("total_s", "evaluations_s")}
    assert set(phases) >= {"startup_s", "parse_s", "data_s", "model_s", "tokenize_s", "training_s"}
    assert {"evaluation_s", "final_evaluation_s", "trainer_s", "other_s"} <= set(phases)
    assert phases["startup_s"] == 0 and all(value >= 0 for value in phases.values())
    assert timings["total_s"] == pytest.approx(sum(phases.values()))
    assert timings["total_s"] == pytest.approx(wall_s, rel=0.03)  # only the return from main is outside it
    assert len(timings["evaluations_s"]) == 2 and timings["evaluation_s"] == pytest.approx(
        sum(timings["evaluations_s"])
    )
    assert timings["training_s"] > 0 and timings["other_s"] < 0.1 * timings["total_s"]


def test_run_as_a_program_its_start_up_is_the_process_age(tmp_path, tiny_bert_dir):
    """``python -m transformers_fine_tuning.fine_tune``: ``startup_s`` is the interpreter and the imports, and
    the job's total falls within the process's wall time (its exit, after the results, is outside)."""
    import json
    import os
    import subprocess
    import sys
    import time

    output_dir = tmp_path / "program"
    argv = _argv(tiny_bert_dir, FIXTURES / "SST-2", output_dir, "--task_name", "sst2", "--max_steps", "1")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "transformers_fine_tuning.fine_tune", *argv],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
    )
    wall_s = time.perf_counter() - started
    timings = json.loads((output_dir / "results.json").read_text())["timings"]
    assert 0.5 < timings["startup_s"] < timings["total_s"] < wall_s
