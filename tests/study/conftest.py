"""Fixtures of the seed-study tests: a tiny random BERT with a real tokenizer, and tiny study files on a
subset of the real RTE in ``../shared/glue``. Everything is offline and on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STUDY_SCRIPT = PROJECT_ROOT / "scripts" / "study.py"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# Tiny runs: 16 training examples in batches of 8 (2 steps, evaluated after each), 32 dev examples.
TINY_ARGUMENTS = {
    "max_train_samples": 16,
    "max_eval_samples": 32,
    "max_seq_length": 32,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "learning_rate": 1.0e-3,
    "eval_strategy": "steps",
    "eval_steps": 1,
    "logging_steps": 1,
    "use_cpu": True,
}


@pytest.fixture
def write_study(tmp_path, tiny_bert_dir, glue_dir) -> Callable[..., Path]:
    """Write a tiny study file (2 recipes × 3 seeds on RTE by default); keys given replace the defaults."""

    def write(name: str = "tiny", **keys) -> Path:
        study = {
            "name": name,
            "output_dir": str(tmp_path / name),
            "tasks": ["rte"],
            "recipes": ["devlin2019", "mosbach2021"],
            "seeds": "0-2",
            "arguments": {"model_name_or_path": tiny_bert_dir, "data_dir": str(glue_dir), **TINY_ARGUMENTS},
        }
        study.update(keys)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(study), encoding="utf-8")
        return path

    return write


def _study_command(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STUDY_SCRIPT), *args],
        cwd=PROJECT_ROOT,
        env=OFFLINE,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def study_command() -> Callable[..., subprocess.CompletedProcess]:
    """``study_command(*args)`` runs ``python scripts/study.py ARGS`` offline from the project root."""
    return _study_command


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool], float, str], None]:
    """``wait_until(condition, timeout_s, what)`` polls until ``condition()`` holds, else fails the test."""
    return _wait_until
