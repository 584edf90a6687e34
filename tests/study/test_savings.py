"""What a study saves its runs (issue: what a study costs), each switched on and off: the runs' metrics and
predictions stay the same. On: CPU runs start with glibc's fixed malloc thresholds (recorded in their results)
and the runs share one tokenised copy of the data in ``<study>/tokenized``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transformers_fine_tuning.study import ExecutionOptions, StudyStore, load_spec, run_study
from transformers_fine_tuning.study.run.backends import local_slot_environments
from transformers_fine_tuning.study.run.environment import MALLOC_THRESHOLDS, cpu_run_environment


def _run(write_study, name: str, **savings) -> tuple[list[dict], Path]:
    """Run a 2-run study with subprocess isolation: its runs' results (each with its log), its directory."""
    spec = load_spec(write_study(name, recipes=["devlin2019"], seeds="0-1"))
    run_study(spec, ExecutionOptions(backend="sequential", isolation="subprocess", **savings), report=False)
    with StudyStore(spec.store_path) as store:
        runs = sorted(store.runs(), key=lambda run: run.seed)  # seed 0 runs first
    assert [run.status for run in runs] == ["completed"] * 2
    results = []
    for run in runs:
        results.append(json.loads((Path(run.output_dir) / "results.json").read_text()))
        results[-1]["log"] = (Path(run.output_dir) / "log.txt").read_text()
    return results, spec.output_dir


def _scores(metrics: dict[str, dict]) -> dict[str, dict]:
    """The metrics without the timings (runtime, samples and steps per second)."""
    return {
        split: {
            name: value for name, value in values.items() if name != "runtime" and "per_second" not in name
        }
        for split, values in metrics.items()
    }


def test_savings_leave_the_runs_unchanged(write_study, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in MALLOC_THRESHOLDS:
        monkeypatch.delenv(key, raising=False)
    saved, saved_dir = _run(write_study, "saved")
    plain, plain_dir = _run(write_study, "plain", malloc_thresholds=False, share_tokenized=False)
    for with_savings, without in zip(saved, plain, strict=True):
        assert _scores(with_savings["metrics"]) == _scores(without["metrics"])
        assert with_savings["predictions"] == without["predictions"]
        assert with_savings["train_loss_history"] == without["train_loss_history"]
        assert with_savings["device"]["malloc_env"] == MALLOC_THRESHOLDS
        assert without["device"]["malloc_env"] == {}
    # both runs read the same two tokenised splits; the first wrote them, the second only loaded them
    assert "Tokenizing rte" in saved[0]["log"] and "Tokenizing rte" not in saved[1]["log"]
    assert all("Tokenizing rte" in results["log"] for results in plain)
    assert sorted(path.name.split("-")[1] for path in (saved_dir / "tokenized").glob("*.arrow")) == [
        "train",
        "validation",
    ]
    assert not (plain_dir / "tokenized").exists()


def test_malloc_thresholds_only_for_cpu_runs_and_never_over_the_users_own(monkeypatch) -> None:
    for key in MALLOC_THRESHOLDS:
        monkeypatch.delenv(key, raising=False)
    assert local_slot_environments(2, gpus=[])[1]["env"].items() >= MALLOC_THRESHOLDS.items()
    gpu_slot = local_slot_environments(2, gpus=["0", "1"])[1]["env"]
    assert gpu_slot["CUDA_VISIBLE_DEVICES"] == "1" and not gpu_slot.keys() & MALLOC_THRESHOLDS.keys()
    off = local_slot_environments(1, gpus=[], malloc_thresholds=False)[0]["env"]
    assert not off.keys() & MALLOC_THRESHOLDS.keys()
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # the user's own setting wins, not mixed with ours
    assert cpu_run_environment() == {}


def test_compile_cache_in_the_study_directory_unless_the_user_set_one(tmp_path, monkeypatch) -> None:
    from transformers_fine_tuning.study.run.environment import compile_cache_environment

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    store = tmp_path / "study" / "study.sqlite"
    assert compile_cache_environment(store) == {
        "TORCHINDUCTOR_CACHE_DIR": str((tmp_path / "study" / "compile-cache").resolve())
    }
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    assert compile_cache_environment(store) == {}


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, caplog) -> None:
    import logging

    import torch

    from transformers_fine_tuning import provenance

    caplog.set_level(logging.WARNING, logger=provenance.__name__)
    cpu = torch.device("cpu")
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: {"model name": "Old CPU", "flags": "fpu sse avx2"})
    assert provenance.cpu_has_native_bf16() is False
    provenance.warn_if_bf16_is_emulated(cpu, bf16=False)
    assert not caplog.records
    provenance.warn_if_bf16_is_emulated(cpu, bf16=True)
    assert "Old CPU has neither avx512_bf16 nor amx_bf16" in caplog.text
    caplog.clear()
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: {"model name": "New CPU", "flags": "avx2 amx_bf16"})
    provenance.warn_if_bf16_is_emulated(cpu, bf16=True)
    assert provenance.cpu_has_native_bf16() is True and not caplog.records
