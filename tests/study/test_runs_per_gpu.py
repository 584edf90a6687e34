"""K runs per GPU on the local backend, on a machine without one: the GPUs are ``CUDA_VISIBLE_DEVICES`` entries
and the runs (in the workers' processes) a fine-tune script of our own that runs the package's job on CPU and
then writes, as a GPU run does, the GPU's memory and its peak into ``results.json`` (``FAKE_PEAK_GIB`` of a
16 GiB GPU), then holds on for 8 s, as a longer run would. It logs the device each run saw and when it ran, so the test can tell which
runs shared a GPU at the same time."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from transformers_fine_tuning.study import ExecutionOptions, load_spec, run_study
from transformers_fine_tuning.study.run.backends import CUDA_CONTEXT_GIB, runs_per_gpu_that_fit

FAKE_GPU_JOB = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path

    from transformers_fine_tuning import fine_tune
    from transformers_fine_tuning.fine_tune import parse_fine_tune_args  # noqa: F401 (a study script's parser)


    def run(args):
        started = time.time()
        outcome = fine_tune.run(args)
        path = Path(args.training.output_dir) / "results.json"
        results = json.loads(path.read_text())
        results["device"].update(type="cuda", memory_gib=16.0, peak_memory_gib=float(os.environ["FAKE_PEAK_GIB"]))
        path.write_text(json.dumps(results))
        time.sleep(8)  # a run long enough for the further workers to start while it holds its GPU
        with open(os.environ["FAKE_GPU_LOG"], "a") as log:
            record = {"gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": started, "end": time.time()}
            log.write(json.dumps(record) + "\\n")
        return outcome
    """
)


def test_how_many_fit_comes_from_the_largest_measured_peak() -> None:
    gpu = {"memory_gib": 16.0}
    assert runs_per_gpu_that_fit(4, []) is None
    assert runs_per_gpu_that_fit(4, [{"type": "cpu", "threads": 2}]) is None  # CPU runs measure nothing
    assert runs_per_gpu_that_fit(4, [{**gpu, "peak_memory_gib": 3.0}]) == 4  # 4 × 3.6 GiB ≤ 14.4 GiB
    two = runs_per_gpu_that_fit(4, [{**gpu, "peak_memory_gib": 3.0}, {**gpu, "peak_memory_gib": 5.0}])
    assert two == int(0.9 * 16 // (5.0 + CUDA_CONTEXT_GIB)) == 2  # the largest peak decides
    assert runs_per_gpu_that_fit(4, [{**gpu, "peak_memory_gib": 20.0}]) == 1  # never fewer than one


def test_options_that_conflict_are_refused(write_study, monkeypatch) -> None:
    with pytest.raises(ValueError, match="either workers or runs_per_gpu"):
        ExecutionOptions(backend="local", workers=4, runs_per_gpu=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: refused before any run starts
    spec = load_spec(write_study("no-gpu", recipes=["devlin2019"], seeds=[0]))
    with pytest.raises(ValueError, match="--runs-per-gpu 2: this machine shows no GPU"):
        run_study(spec, ExecutionOptions(backend="local", runs_per_gpu=2), report=False)
    assert not (spec.output_dir / "runs").exists()


def _overlapping_on_one_gpu(log: Path) -> int:
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    return sum(
        a["gpu"] == b["gpu"] and a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(runs)
        for b in runs[i + 1 :]
    )


@pytest.mark.parametrize(("peak_gib", "per_gpu"), [(3.0, 2), (12.0, 1)])
def test_k_runs_per_gpu_once_a_run_has_shown_they_fit(
    write_study, tmp_path, monkeypatch, capsys, peak_gib, per_gpu
) -> None:
    """First one run alone (one worker per GPU, the other finds nothing to do); then the study grows by four
    seeds and resumes: the completed run's peak decides how many workers share each GPU."""
    script = tmp_path / "fake_gpu_job.py"
    script.write_text(FAKE_GPU_JOB)
    log = tmp_path / "gpu-log.jsonl"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("FAKE_PEAK_GIB", str(peak_gib))
    monkeypatch.setenv("FAKE_GPU_LOG", str(log))
    options = ExecutionOptions(
        backend="local", runs_per_gpu=2, isolation="in-process", script=str(script), poll_interval_s=0.2
    )
    first = load_spec(write_study("gpus", recipes=["devlin2019"], seeds=[0]))
    assert run_study(first, options, report=False).completed == 1
    assert not (first.output_dir / "workers" / "worker-2.log").exists()  # nothing measured: one per GPU
    log.unlink()
    grown = load_spec(write_study("gpus", recipes=["devlin2019"], seeds="0-4"))
    assert run_study(grown, options, report=False).completed == 5
    out = capsys.readouterr().out
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 4 and {run["gpu"] for run in runs} == {"0", "1"}  # each worker saw one GPU
    if per_gpu == 2:
        assert "a run peaks at 3.0 GiB of a GPU's 16.0 GiB: 2 run(s) per GPU" in out
        assert _overlapping_on_one_gpu(log) >= 1  # two runs shared a GPU at once
    else:
        assert "1 run(s) per GPU, not the 2 asked for (they would not fit)" in out
        assert _overlapping_on_one_gpu(log) == 0
