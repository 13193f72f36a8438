#!/usr/bin/env bash
# On a GPU machine with PyTorch installed (the project's H100/H200 image): build against that
# PyTorch's LibTorch (CUDA) and NCCL, run the GPU test set, then a one-epoch smoke run of every
# sorter on the full-size synthetic set, and print a summary table. Logs go to $OUT (when set) or
# build-gpu/logs. Meant to finish within 5 minutes.
#
#   scripts/gpu-check.sh            # PYTHON=... to pick the python that has torch
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
logs=${OUT:-build-gpu/logs}
mkdir -p "$logs"
start=$(date +%s)

prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
  echo "gpu-check: $python has no torch" >&2; exit 2; }
nccl_include=$("$python" - <<'PY' 2>/dev/null
import os, nvidia.nccl
for path in nvidia.nccl.__path__:
    if os.path.exists(os.path.join(path, "include", "nccl.h")):
        print(os.path.join(path, "include"))
PY
)
echo "gpu-check: LibTorch from $prefix; NCCL headers in ${nccl_include:-(not found)}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$logs/gpu.txt"

cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DNCCL_INCLUDE_DIR="$nccl_include" > "$logs/configure.log" 2>&1 || {
  tail -30 "$logs/configure.log"; echo "gpu-check: configure failed" >&2; exit 1; }
grep -E "khsgd:|WARNING" -A1 "$logs/configure.log" || true
cmake --build build-gpu > "$logs/build.log" 2>&1 || {
  grep -E "error|Error" "$logs/build.log" | head -40; echo "gpu-check: build failed" >&2; exit 1; }
build-gpu/khsgd_train --version | tee "$logs/version.txt"
echo "gpu-check: built in $(( $(date +%s) - start )) s"

ctest --test-dir build-gpu -L gpu --output-on-failure --timeout 240 > "$logs/gpu-tests.log" 2>&1
tests_status=$?
grep -E "tests passed|Failed|\*\*\*" "$logs/gpu-tests.log" || true

printf '\n%-8s %-6s %10s %10s %10s %10s\n' sorter epochs "train s" "eval s" "test acc" "peak MiB" | tee "$logs/summary.txt"
smoke_status=0
for sorter in D-RR CD-GraB SBW KH-SGD; do
  out=build-gpu/smoke/$sorter
  rm -rf "$out"
  if build-gpu/khsgd_train --dataset synthetic --device cuda --sorter "$sorter" --lr 5e-3 --epochs 2 \
      --results_dir "$out" > "$logs/smoke-$sorter.log" 2>&1; then
    run=$(dirname "$(find "$out" -name metrics.csv | head -1)")
    last=$(tail -1 "$run/metrics.csv")
    peak=$(sed -n 's/.*"peak_rss_mib": \([0-9.]*\).*/\1/p' "$run/summary.json")
    printf '%-8s %-6s %10s %10s %10s %10s\n' "$sorter" 2 "$(echo "$last" | cut -d, -f6)" \
      "$(echo "$last" | cut -d, -f7)" "$(echo "$last" | cut -d, -f5)" "$peak" | tee -a "$logs/summary.txt"
  else
    smoke_status=1
    printf '%-8s failed: %s\n' "$sorter" "$(tail -1 "$logs/smoke-$sorter.log")" | tee -a "$logs/summary.txt"
  fi
done
# Speed: the GPU and, as the baseline on the same machine, its CPU.
echo | tee -a "$logs/summary.txt"
KHSGD_TRAIN=build-gpu/khsgd_train scripts/bench.sh --devices "cuda cpu" --epochs 4 2>&1 | tee "$logs/bench.txt" | tee -a "$logs/summary.txt"
echo "gpu-check: GPU tests $([ $tests_status -eq 0 ] && echo passed || echo FAILED), smoke runs $([ $smoke_status -eq 0 ] && echo passed || echo FAILED), $(( $(date +%s) - start )) s in all" | tee -a "$logs/summary.txt"
[ $tests_status -eq 0 ] && [ $smoke_status -eq 0 ]
