"""Shared fixtures of the GLUE tests: where the data lives, and a Hub that is never reached."""

from __future__ import annotations

import os

# Offline before anything imports huggingface_hub / datasets; the fixture below covers earlier imports.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest

SHARED_GLUE = Path(__file__).resolve().parents[2] / ".." / "shared" / "glue"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test off the network, even if the Hub libraries were imported before this file."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture
def fixtures() -> Path:
    """Hand-written GLUE-layout folders of every task but RTE and MRPC, and CSV/JSON files under files/."""
    return Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def shared_glue() -> Path:
    """The real RTE and MRPC files (../shared/glue from the project root, never copied into the repository);
    the tests that need them are skipped where they are absent."""
    if not (SHARED_GLUE / "RTE").is_dir() or not (SHARED_GLUE / "MRPC").is_dir():
        pytest.skip(f"real GLUE data not found at {SHARED_GLUE}")
    return SHARED_GLUE
