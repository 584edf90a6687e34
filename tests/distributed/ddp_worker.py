"""One rank of a data-parallel fine-tune.py run (started by torchrun): runs the script's own steps, then writes
a digest of this rank's final weights, optimizer groups, L2-SP anchors and weight average to
``<output_dir>/rank<R>.json``, so the test can check that every rank ends with identical weights and was given
identical groups, anchors and averages."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "fine-tune.py"


def digest(tensors) -> str:
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def main() -> None:
    spec = importlib.util.spec_from_file_location("fine_tune", SCRIPT)
    fine_tune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fine_tune)
    args = fine_tune.parse_fine_tune_args(sys.argv[1:])
    trainer, _ = fine_tune.run(args)
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    anchors = [
        optimizer.state[p]["anchor"] for g in optimizer.param_groups for p in g["params"] if g.get("l2sp")
    ]
    averages = [  # a weight average's tensors (EMA, SWA), if the run kept one
        tensor
        for callback in trainer.callback_handler.callbacks
        if getattr(callback, "average", None) is not None
        for tensor in callback.average.averages
    ]
    report = {
        "averages": digest(averages),
        "num_averages": len(averages),
        "rank": trainer.args.process_index,
        "world_size": trainer.args.world_size,
        "weights": digest(trainer.model.state_dict().values()),
        "anchors": digest(anchors),
        "num_anchors": len(anchors),
        "groups": [(g["name"], g["param_names"], g["lr"]) for g in optimizer.param_groups],
        "global_step": trainer.state.global_step,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
    }
    (Path(args.training.output_dir) / f"rank{report['rank']}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
