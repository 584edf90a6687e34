#!/usr/bin/env bash
# CI job for the TPU code path, on torch_xla's CPU device (no TPU needed): brings up the shared XLA
# environment (scripts/xla_env.sh; outside the clone, reused across clones), then runs tests/xla in it.
# Exits with pytest's status. TFT_REQUIRE_XLA=1 makes a torch_xla that cannot be imported an error
# rather than a silently empty run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
python="$(bash scripts/xla_env.sh | tail -n 1)"
echo "xla.sh: environment ready in $((SECONDS - start)) s ($python)"

if ! PJRT_DEVICE=CPU "$python" -c 'import torch, torch_xla; torch.ones(2, device=torch_xla.device()).sum().item()'; then
    echo "xla.sh: torch_xla cannot run on its CPU device here (error above)" >&2
    exit 1
fi

status=0
PJRT_DEVICE=CPU TFT_REQUIRE_XLA=1 "$python" -m pytest tests/xla -p no:cacheprovider || status=$?
echo "xla.sh: pytest exited $status after $((SECONDS - start)) s"
exit "$status"
