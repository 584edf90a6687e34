"""fine-tune.py on torch_xla's device — the TPU path, run on torch_xla's CPU device (``PJRT_DEVICE=CPU``).

Both ways the script starts on a TPU are run as subprocesses, the way a user starts them: through ``_mp_fn``
as transformers' ``examples/pytorch/xla_spawn.py`` calls it, and through ``--xla_launch``
(``torch_xla.launch``), started together; with them, a ``--xla_launch`` with bad input. Another test runs
``fine-tune.py``'s ``run`` in this process, to look at the optimizer the Trainer stepped. Model: a tiny random BERT saved with the packaged MiniLM's tokenizer
(``tiny_bert_dir``); data: the first examples of the real RTE in ``../shared/glue``.

On the CPU device ``torch_xla.launch`` starts one process whatever ``CPU_NUM_DEVICES`` says, and runs one
*thread* per device in it. The Trainer cannot run as threads of one process: Accelerate's state is one per
process, so with ``CPU_NUM_DEVICES=2`` both threads take themselves for non-main replicas, both wait in
``main_process_first``'s rendezvous, and XLA aborts the process ("Termination timeout for `all reduce
RendezvousKey{...}` of 10 seconds exceeded"). The runs here are therefore single-device (world size 1).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import default_data_collator

from transformers_fine_tuning import AdamWL2SP
from transformers_fine_tuning.results import read_results

# 24 training examples in batches of 8: 3 steps, each logged (a 4th step costs one more compilation, ~4 s
# here). Sequences of 32 tokens keep the compiled graphs small; 16 evaluation examples fit one eval batch.
MAX_TRAIN, BATCH, MAX_SEQ = 24, 8, 32
STEPS = MAX_TRAIN // BATCH

# What transformers' examples/pytorch/xla_spawn.py does: import the training script as a module (its folder on
# sys.path), patch sys.argv (the older version appended --tpu_num_cores), spawn the script's _mp_fn. Under
# PJRT, nprocs=None means every device; xla_spawn.py passes its --num_cores, which torch_xla 2.9 only accepts
# as 1 (run in this process) or None ("Unsupported nprocs (8)" otherwise).
XLA_SPAWN = """\
import importlib
import sys
from pathlib import Path

import torch_xla.distributed.xla_multiprocessing as xmp


def main():
    script = Path(sys.argv[1])
    sys.path.append(str(script.parent.resolve()))
    mod = importlib.import_module(script.stem)
    sys.argv = [sys.argv[1], *sys.argv[2:], "--tpu_num_cores", "1"]
    xmp.spawn(mod._mp_fn, args=(), nprocs=None)


if __name__ == "__main__":
    main()
"""


def script_args(model_dir: Path, glue_dir: Path, *extra: str) -> list[str]:
    """The run's flags; ``--output_dir`` comes last, its value to be appended."""
    return [
        "--model_name_or_path", str(model_dir), "--task_name", "rte", "--data_dir", str(glue_dir / "RTE"),
        "--max_train_samples", str(MAX_TRAIN), "--max_eval_samples", "16", "--max_seq_length", str(MAX_SEQ),
        "--per_device_train_batch_size", str(BATCH), "--num_train_epochs", "1", "--learning_rate", "1e-3",
        "--logging_steps", "1", "--seed", "7", "--disable_tqdm", "true", "--save_final_model", "true",
        *extra, "--output_dir",
    ]  # fmt: skip


class Launch:
    """One ``fine-tune.py`` launch running in the background (its own process group, output to files)."""

    def __init__(self, name: str, command: list[str], cwd: Path, env: dict[str, str], logs: Path):
        self.stdout_path, self.stderr_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self.popen = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True
            )

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess:
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"{self.popen.args} did not finish in {timeout} s:\n{self.stderr_path.read_text()[-4000:]}"
            )
        return subprocess.CompletedProcess(
            self.popen.args, self.popen.returncode, self.stdout_path.read_text(), self.stderr_path.read_text()
        )

    def kill(self) -> None:
        """Ends the launch and the processes it started (its process group), if still running."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@pytest.fixture(scope="module")
def launches(tmp_path_factory, project_root, xla_subprocess_env, tiny_bert_dir, glue_dir):
    """The script's launches, all started at once: each compiles its graphs mostly on one core, so on two
    cores they take little longer than one. ``{name: (Launch, output_dir)}``."""
    root = tmp_path_factory.mktemp("launches")
    launcher = root / "xla_spawn.py"
    launcher.write_text(XLA_SPAWN)
    script = str(project_root / "fine-tune.py")
    env = {key: value for key, value in xla_subprocess_env.items() if key != "CPU_NUM_DEVICES"}  # see above
    bad_input = ["--model_name_or_path", str(tiny_bert_dir), "--task_name", "glue9", "--output_dir"]
    commands = {
        # xla_spawn.py from another folder: it must find fine-tune.py by its path
        "spawn": ([sys.executable, str(launcher), script, *script_args(tiny_bert_dir, glue_dir)], root),
        "launch": (
            [sys.executable, script, "--xla_launch", *script_args(tiny_bert_dir, glue_dir)],
            project_root,
        ),
        "bad_input": ([sys.executable, script, "--xla_launch", *bad_input], project_root),
    }
    started = {}
    try:
        for name, (command, cwd) in commands.items():
            started[name] = (Launch(name, [*command, str(root / name)], cwd, env, root), root / name)
        yield started
    finally:
        for launch, _ in started.values():
            launch.kill()


def succeeded(launch: Launch) -> subprocess.CompletedProcess:
    process = launch.wait()
    assert process.returncode == 0, f"exit status {process.returncode}\n{process.stderr[-4000:]}"
    return process


def assert_completed_xla_run(
    process: subprocess.CompletedProcess, output_dir: Path, initial_dir: Path
) -> dict:
    """One results.json from one writer, of a world-size-1 XLA run that took every step with a finite, moving
    loss, and a saved model whose every backbone tensor moved away from the initial checkpoint."""
    results_path = output_dir / "results.json"
    assert [p.name for p in output_dir.iterdir() if "results" in p.name] == ["results.json"]  # no temp file
    assert process.stdout.count(f"-> {results_path}") == 1, process.stdout[-2000:]
    results = json.loads(results_path.read_text())

    assert results["status"] == "completed" and results["model_type"] == "bert"
    assert results["device"]["type"] == "xla" and results["device"]["name"] == os.environ["PJRT_DEVICE"]
    assert results["device"]["world_size"] == 1
    assert "torch_xla" in results["versions"]
    assert results["num_examples"] == {"train": MAX_TRAIN, "validation": 16}
    assert results["global_step"] == STEPS
    value = results["main_metric"]["value"]
    assert results["main_metric"]["name"] == "accuracy" and math.isfinite(value) and 0 <= value <= 1
    assert results["metrics"]["validation"]["accuracy"] == value
    assert [entry["step"] for entry in results["evaluations"]] == [STEPS]

    history = results["train_loss_history"]
    assert [entry["step"] for entry in history] == list(range(1, STEPS + 1))
    losses = [entry["loss"] for entry in history]
    assert all(isinstance(loss, float) and math.isfinite(loss) for loss in losses), losses
    assert len(set(losses)) > 1, losses

    # XLA defaults: torch's fused AdamW has no XLA kernel (the Trainer's default would fail at the first step),
    # pinned host memory is of no use (and torch warns on every dataloader).
    assert results["arguments"]["training"]["optim"] == "adamw_torch"
    assert results["arguments"]["training"]["dataloader_pin_memory"] is False
    assert "pin_memory" not in process.stderr

    initial = load_file(initial_dir / "model.safetensors")
    final = load_file(output_dir / "model.safetensors")
    assert {"classifier.weight", "classifier.bias"} <= set(final)
    unchanged = [name for name, tensor in initial.items() if torch.equal(final[f"bert.{name}"], tensor)]
    assert not unchanged, f"not trained: {unchanged}"
    assert any(name.startswith("encoder.layer.") for name in initial)
    return results


def test_xla_spawn_runs_mp_fn(launches, tiny_bert_dir):
    launch, out = launches["spawn"]
    results = assert_completed_xla_run(succeeded(launch), out, tiny_bert_dir)
    assert results["arguments"]["run"]["tpu_num_cores"] == 1 and not results["arguments"]["run"]["xla_launch"]


def test_xla_launch_flag(launches, tiny_bert_dir):
    launch, out = launches["launch"]
    results = assert_completed_xla_run(succeeded(launch), out, tiny_bert_dir)
    assert results["arguments"]["run"]["xla_launch"] is True


def test_xla_launch_bad_input_ends_with_status_2_from_the_launched_process(launches):
    """--xla_launch starts the processes before the arguments are parsed (parsing starts the XLA runtime,
    after which torch_xla.launch refuses to start any), so bad input is reported by the launched process."""
    launch, out = launches["bad_input"]
    process = launch.wait()
    assert process.returncode == 2, process.stderr[-4000:]
    line = process.stderr.strip().splitlines()[-1]
    assert line.startswith("fine-tune.py: error: ") and "glue9" in line and "rte" in line
    assert not (out / "results.json").exists()


@pytest.fixture(scope="module")
def fine_tune_module(project_root):
    """fine-tune.py, imported as a module (its name has a dash, so from its path)."""
    spec = importlib.util.spec_from_file_location("fine_tune_script", project_root / "fine-tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_in_process_steps_the_xla_parameters_with_anchors_on_xla(
    tmp_path, fine_tune_module, tiny_bert_dir, glue_dir
):
    args = fine_tune_module.parse_fine_tune_args(
        [
            *script_args(
                tiny_bert_dir, glue_dir, "--optim", "adamw_l2sp", "--l2sp_pretrained", "0.1",
                "--reinit_layers", "1",
            ),
            str(tmp_path / "out"),
        ]
    )  # fmt: skip
    trainer, results = fine_tune_module.run(args)

    # Static shapes on XLA: every example padded to --max_seq_length, no dynamic padding collator.
    assert len(trainer.train_dataset[0]["input_ids"]) == MAX_SEQ
    assert trainer.data_collator is default_data_collator

    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # without Accelerate's wrapper
    assert isinstance(optimizer, AdamWL2SP)
    named = dict(trainer.model.named_parameters())
    initial = load_file(tiny_bert_dir / "model.safetensors")
    held, anchored = [], set()
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"], strict=True):
            assert param is named[name], name
            assert param.device.type == "xla", (name, param.device)
            state = optimizer.state[param]
            assert state["exp_avg"].device.type == "xla" and state["step"].item() == STEPS, name
            if group["l2sp"] > 0:
                anchor = state["anchor"]
                assert anchor.device.type == "xla" and anchor is not param, name
                # the anchor is the checkpoint's weight, and the parameter moved away from it
                assert torch.equal(anchor.cpu(), initial[name.removeprefix("bert.")]), name
                assert not torch.equal(param.detach().cpu(), anchor.cpu()), name
                anchored.add(name)
            else:
                assert "anchor" not in state, name
            held.append(name)
    assert sorted(held) == sorted(name for name, param in named.items() if param.requires_grad)
    # anchored: the pretrained backbone; not the re-initialised top layer, the pooler or the new head
    novel = ("bert.encoder.layer.1.", "bert.pooler.", "classifier.")
    assert anchored == {name for name in named if not name.startswith(novel)}
    assert "bert.encoder.layer.0.attention.self.query.weight" in anchored

    assert results.device["type"] == "xla" and results.global_step == STEPS
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["global_step"] == STEPS and written["device"] == results.device
    assert written["arguments"]["training"]["optim"] == "adamw_l2sp"
    assert read_results(tmp_path / "out") == results
    losses = [entry.loss for entry in results.train_loss_history]
    assert len(losses) == STEPS and all(math.isfinite(loss) for loss in losses) and len(set(losses)) > 1
