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
def shared_glue(glue_dir: Path) -> Path:
    """The real RTE and MRPC files (../shared/glue from the project root, never copied into the repository)."""
    return glue_dir
