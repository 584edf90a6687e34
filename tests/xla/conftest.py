"""Tests on torch_xla's device, run in the XLA environment of ``scripts/xla_env.sh`` (``bash .ci/xla.sh``).

Without torch_xla (the main ``.venv``) this whole folder is left out of collection, so the main test run
does not fail on it; ``TFT_REQUIRE_XLA=1`` (set by ``.ci/xla.sh``) turns a torch_xla that cannot be imported
into an error instead, so the XLA job never passes by collecting nothing.

``PJRT_DEVICE`` defaults to ``CPU`` (torch_xla's CPU device, no TPU needed); set it to ``TPU`` on a TPU VM.
XLA compiles one graph per distinct shape, so every batch here has the same shape: fixed-length padding,
a dataset size divisible by the batch size, and ``dataloader_drop_last``.

Fixtures shared by the tests here (and by tests of ``fine-tune.py`` on XLA): :func:`xla_device`,
:func:`fixed_length_tokens`, :func:`xla_training_args`, :func:`project_root`, :func:`xla_subprocess_env`,
:func:`tiny_bert_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    import torch_xla  # noqa: F401  (importing does not start the runtime; PJRT_DEVICE is read when it starts)

    XLA_IMPORT_ERROR: BaseException | None = None
except Exception as error:  # ImportError, or a torch_xla built for another torch (undefined symbol, ...)
    XLA_IMPORT_ERROR = error

if XLA_IMPORT_ERROR is None:
    os.environ.setdefault("PJRT_DEVICE", "CPU")
else:
    if os.environ.get("TFT_REQUIRE_XLA") == "1":
        raise RuntimeError(
            f"TFT_REQUIRE_XLA=1 but torch_xla cannot be imported: {XLA_IMPORT_ERROR!r}. "
            "Run the tests in the environment of scripts/xla_env.sh."
        ) from XLA_IMPORT_ERROR
    collect_ignore_glob = ["*"]  # no torch_xla here: nothing in this folder can run

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def pytest_report_header(config):
    if XLA_IMPORT_ERROR is not None:
        return f"tests/xla: skipped, torch_xla not importable ({type(XLA_IMPORT_ERROR).__name__})"
    import torch
    import torch_xla
    import transformers

    return (
        f"tests/xla: torch {torch.__version__}, torch_xla {torch_xla.__version__}, "
        f"transformers {transformers.__version__}, PJRT_DEVICE={os.environ['PJRT_DEVICE']}"
    )


@pytest.fixture(scope="session", autouse=True)
def _package_is_this_checkout():
    """The XLA environment is shared by every clone; make sure it runs this clone's code."""
    import transformers_fine_tuning

    source = Path(transformers_fine_tuning.__file__).resolve().parent
    expected = PROJECT_ROOT / "src" / "transformers_fine_tuning"
    if source != expected:
        pytest.fail(
            f"transformers_fine_tuning is imported from {source}, not this checkout's {expected}: "
            "run `bash scripts/xla_env.sh` from this checkout to point the XLA environment at it."
        )


@pytest.fixture(scope="session")
def xla_device():
    """The XLA device the Trainer places the model on (``xla:0``; torch_xla's CPU device under PJRT_DEVICE=CPU)."""
    import torch_xla

    device = torch_xla.device()
    assert device.type == "xla"
    return device


class FixedLengthTokens:
    """Token sequences of varying real length, padded to one fixed length, labelled by their first token.

    Every item has the same shape, so the XLA graphs compile once. The label (first token > 50) is
    learnable by a tiny model within a few steps.
    """

    def __init__(
        self, n: int = 32, length: int = 16, vocab_size: int = 99, pad_token_id: int = 0, seed: int = 0
    ):
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(5, vocab_size, (n, length), generator=generator)
        lengths = torch.randint(length // 2, length + 1, (n,), generator=generator)
        self.attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        self.input_ids[self.attention_mask == 0] = pad_token_id
        self.labels = (self.input_ids[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {
            "input_ids": self.input_ids[index],
            "attention_mask": self.attention_mask[index],
            "labels": self.labels[index],
        }


@pytest.fixture
def fixed_length_tokens():
    """Factory of :class:`FixedLengthTokens` datasets: ``fixed_length_tokens(n=32, length=16, seed=0)``."""
    return FixedLengthTokens


@pytest.fixture
def xla_training_args(tmp_path):
    """Factory of ``TrainingArguments`` for a few static-shape steps on the XLA device; overrides as kwargs."""
    from tiny_models import training_args

    def make(**overrides):
        xla = {
            "max_steps": 4,
            "use_cpu": False,
            "dataloader_drop_last": True,
        }  # one shape, one compiled graph
        return training_args(tmp_path, **{**xla, **overrides})

    return make


@pytest.fixture(scope="session")
def project_root() -> Path:
    """Root of this checkout (where ``fine-tune.py`` lives)."""
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def xla_subprocess_env() -> dict[str, str]:
    """Environment for a child process (e.g. ``fine-tune.py`` under ``torch_xla.launch``) on the same device,
    offline. Under PJRT_DEVICE=CPU, ``torch_xla.launch`` starts ONE process whatever ``CPU_NUM_DEVICES`` says;
    that variable sets how many XLA CPU devices it has, each run by a thread of that process. Shared by the
    session: copy it to change it."""
    return {
        **os.environ,
        "PJRT_DEVICE": os.environ["PJRT_DEVICE"],
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_path) -> Path:
    """A tiny random BERT backbone (2 layers, width 32; no task head) saved with the packaged MiniLM's
    tokenizer: a "pretrained" checkpoint that ``fine-tune.py`` loads in seconds. Its ``model.safetensors``
    holds the initial weights (names without the ``bert.`` prefix of the fine-tuned model)."""
    import torch
    import transformers

    from tiny_models import tiny_config

    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    config = tiny_config("bert", num_layers=2, vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert")
    transformers.AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
