#!/usr/bin/env bash
# One-shot GPU check of the pairwise-sum kernels, for a session that is lent a CUDA machine.
#
# Runs, within about 9.5 minutes (each step has its own timeout, the total stays under the device
# tool's 10-minute command limit):
#   1. the kernel tests on CUDA (compiled Triton, sorted and reference on the GPU, the GPU-only
#      tests: brute-force agreement, peak memory with no P x N buffer, auto crossover) and the
#      loss's every-backend test (CPU tensors, Triton interpreted);
#   2. the benchmark at the sizes incl. (2000, 1e7) and (2000, 6.4e7);
#   3. the sorted-vs-triton crossover grid (to set TRITON_MAX_PAIRS in dispatch.py);
#   4. a small sweep of Triton tile configurations at (2000, 1e7);
#   5. torch.compile of the reference at (1000, 1e5) (optional provider).
# Nothing is installed: it needs python3 with torch, triton, numpy and pytest (the device image
# has them) and runs from the repository root with PYTHONPATH=. .
#
# Usage, from the repository root on the GPU machine:
#   bash benchmarks/gpu_check.sh [OUTDIR]        # OUTDIR defaults to $OUT, else /tmp/paploss_gpu
# Device tool call (one call, ~10 min limit):
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=600)
# Logs and the CSV land in OUTDIR (7 files); copy the CSV rows into
# benchmarks/results/pairwise_cuda.csv and the tables into benchmarks/RESULTS.md.
set -uo pipefail

OUT_DIR="${1:-${OUT:-/tmp/paploss_gpu}}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset TRITON_INTERPRET PAPLOSS_BACKEND
start=$(date +%s)
step() { printf '\n===== [%4ss] %s\n' "$(($(date +%s) - start))" "$*"; }
status=0

step "environment"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    "$PY" -c 'import torch, triton, sys; print("python", sys.version.split()[0], "| torch", torch.__version__, "| triton", triton.__version__, "| cuda", torch.version.cuda, "|", torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).multi_processor_count, "SMs")'
} 2>&1 | tee "$OUT_DIR/env.txt"

step "1. tests on CUDA"
timeout 170 "$PY" -m pytest -q -p no:cacheprovider --durations=8 tests/test_kernels.py \
    2>&1 | tee "$OUT_DIR/tests.log" | tail -n 40
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
# The loss's every-backend test passes CPU tensors: Triton runs them in its interpreter.
TRITON_INTERPRET=1 timeout 30 "$PY" -m pytest -q -p no:cacheprovider \
    "tests/test_loss.py::test_every_backend_gives_the_same_loss_and_gradients" \
    2>&1 | tee -a "$OUT_DIR/tests.log" | tail -n 5
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

step "2. benchmark (CPU sizes + GPU sizes)"
timeout 170 "$PY" benchmarks/bench_pairwise.py --device cuda --gpu-sizes --repeats 10 --warmup 2 \
    --max-mem-gb 60 --markdown --csv "$OUT_DIR/pairwise_cuda.csv" 2>&1 | tee "$OUT_DIR/bench.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

step "3. crossover sorted vs triton"
timeout 70 "$PY" benchmarks/bench_pairwise.py --device cuda --crossover --repeats 5 --warmup 1 \
    --csv "$OUT_DIR/pairwise_cuda.csv" 2>&1 | tee "$OUT_DIR/crossover.log" | tail -n 30
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

step "4. triton tile configurations at (2000, 1e7)"
timeout 90 "$PY" benchmarks/bench_pairwise.py --device cuda --sizes 2000x1e7 --repeats 5 \
    --providers sorted,triton,triton:32x64x8,triton:16x64x4,triton:64x64x8,triton:16x128x4,triton:64x32x4 \
    --csv "$OUT_DIR/pairwise_cuda.csv" 2>&1 | tee "$OUT_DIR/sweep.log" | tail -n 14
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

step "5. torch.compile of the reference (optional provider)"
timeout 55 "$PY" benchmarks/bench_pairwise.py --device cuda --sizes 1000x1e5 --repeats 5 \
    --providers sorted,reference,compile --csv "$OUT_DIR/pairwise_cuda.csv" \
    2>&1 | tee "$OUT_DIR/compile.log" | tail -n 8

step "done, status $status (0 = tests and benchmarks ran)"
exit $status
