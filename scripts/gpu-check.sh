#!/usr/bin/env bash
# The GPU machine's check, one script (about 8 minutes on an H100/H200 with 16 cores): builds
# against the PyTorch installation's LibTorch (CUDA) and NCCL, then runs, each stage bounded in
# time and run whatever the others did:
#
#   build         configure (prints the CUDA architectures) and build into build-gpu
#   cpu-suite     the whole ctest suite but the GPU set, on this CUDA build (in the background)
#   golden-gpu    the reference's four H200 runs (ctest GoldenGpu)
#   kernels       each kernel against the CPU code at D = 5, 21, 200, and the engine's kernels at
#                 D = 64 (ctest KernelChecks, GpuSorters, GpuEngine: resume, saved gradients)
#   backends      NCCL opened by one rank, two NCCL ranks where two GPUs exist, Gloo on the GPU,
#                 lost ranks (ctest GpuBackends)
#   python        the Python module's tests (ctest python_module), its sorters fed CUDA tensors
#                 (fails where the module was not built or sees no GPU)
#   torchrun      torchrun --no_python with 2 ranks (Gloo, CPU) against scripts/launch.sh, and with
#                 1 rank (--device cuda --backend nccl) against a plain run; ctest -R Torchrun
#   memcheck      compute-sanitizer on a one-epoch run of each sorter (small synthetic set)
#   racecheck     the same with --tool racecheck
#   bench         scripts/bench.sh --devices "cuda cpu": seconds per epoch, GPU memory
#
# and prints a table of the stages (passed / FAILED / TIMEOUT / skipped, seconds, log). Every
# stage ends by the deadline (default 540 s after the start; a stage that cannot start in time is
# skipped), so the table always comes out. Logs go to $OUT when set, else build-gpu/logs. Exit
# status 0 when every stage passed.
#
#   scripts/gpu-check.sh [--only "stage ..."] [--build-dir DIR] [--deadline SECONDS]
#   PYTHON=...   the python that has torch (default: /opt/torch/.venv/bin/python, else python3)
#   KHSGD_CMAKE_ARGS="..."   more configure arguments, e.g. -DKHSGD_GLOO_INCLUDE_DIR=DIR where the
#                installed LibTorch ships no Gloo headers (configure warns; --backend gloo is off)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

only=""
build=build-gpu
deadline=540
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=" $2 "; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    *) echo "$0: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
default_python=python3
[ -x /opt/torch/.venv/bin/python ] && default_python=/opt/torch/.venv/bin/python
export PYTHON=${PYTHON:-$default_python}
# torchrun (the ctest -R Torchrun tests call it by name) from the same installation.
export PATH=$(dirname "$PYTHON"):$PATH
[[ "$build" == /* ]] || build=$root/$build
export BUILD=$build ROOT=$root
export LOGS=${OUT:-$build/logs}
mkdir -p "$LOGS"
export TRAIN=$build/khsgd_train
# A GPU test that finds no CUDA engine, GPU or backend fails here rather than skip (a skip would
# read as a pass in the table); a test that needs more GPUs than the machine has still skips.
export KHSGD_REQUIRE_GPU=1
export SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
started=$(date +%s)

wanted() { [ -z "$only" ] || [[ "$only" == *" $1 "* ]]; }

# --- Bookkeeping: one row per stage.
names=() results=() seconds=() logfiles=()
record() {  # NAME RESULT SECONDS LOG
  names+=("$1"); results+=("$2"); seconds+=("$3"); logfiles+=("$4")
  printf 'gpu-check: %-10s %-8s %5ss  %s\n' "$1" "$2" "$3" "$4"
}
# Seconds a stage may take: at most `limit`, and ending 20 s before the deadline.
time_left() {
  local left=$(( deadline - ($(date +%s) - started) - 20 ))
  echo $(( left < $1 ? left : $1 ))
}
# A stage's exit status as the table's word: 124 and 137 are timeout's, 77 a skip.
result_of() {
  case $1 in
    0) echo passed ;;
    124 | 137) echo TIMEOUT ;;
    77) echo skipped ;;
    *) echo FAILED ;;
  esac
}
# Runs the function or command after NAME LIMIT in its own bash, at most LIMIT seconds, its output
# in $LOGS/NAME.log. Functions must be exported (export -f).
stage() {
  local name=$1 limit
  limit=$(time_left "$2")
  shift 2
  if ! wanted "$name"; then return 0; fi
  local log=$LOGS/$name.log start status
  if [ "$limit" -lt 10 ]; then
    record "$name" skipped 0 "(no time left before the deadline)"
    return 0
  fi
  start=$(date +%s)
  timeout --kill-after=15 "$limit" bash -c '"$@"' bash "$@" > "$log" 2>&1
  status=$?
  local result
  result=$(result_of $status)
  record "$name" "$result" $(( $(date +%s) - start )) "$log"
}

# The same, started in the background (its row comes when finish_beside waits for it).
beside_names=() beside_pids=() beside_starts=()
stage_beside() {
  local name=$1 limit
  limit=$(time_left "$2")
  shift 2
  wanted "$name" || return 0
  if [ "$limit" -lt 10 ]; then
    record "$name" skipped 0 "(no time left before the deadline)"
    return 0
  fi
  timeout --kill-after=10 "$limit" bash -c '"$@"' bash "$@" > "$LOGS/$name.log" 2>&1 &
  beside_pids+=($!); beside_names+=("$name"); beside_starts+=("$(date +%s)")
}
finish_beside() {
  local i status
  for i in "${!beside_pids[@]}"; do
    wait "${beside_pids[$i]}"
    status=$?
    record "${beside_names[$i]}" "$(result_of $status)" $(( $(date +%s) - ${beside_starts[$i]} )) \
      "$LOGS/${beside_names[$i]}.log"
  done
}

# --- Stages.
build_stage() {
  # The same configure arguments and torch version as CI's build-pip (scripts/test.sh): the pin in
  # scripts/requirements-torch.txt, the arguments from scripts/torch-cmake-args.sh.
  local pinned have args
  pinned=$(sed -n 's/^torch==//p' "$ROOT/scripts/requirements-torch.txt")
  have=$("$PYTHON" -c 'import torch; print(torch.__version__, torch.version.cuda)') || {
    echo "$PYTHON has no torch"; return 1; }
  echo "torch $have (CI builds against torch $pinned, scripts/requirements-torch.txt)"
  [[ "$have" == "$pinned"* ]] ||
    echo "WARNING: this torch is not the pinned $pinned: the build is not the one CI checked"
  local args_text
  args_text=$("$ROOT/scripts/torch-cmake-args.sh" "$PYTHON") || return 1
  mapfile -t args <<< "$args_text"
  # The wheels ship no Gloo headers; where the machine has none either (no libgloo-dev), a copy of
  # the development machine's, carried along as .gloo-include/gloo (git-ignored; see README GPU).
  [ -f /usr/include/gloo/algorithm.h ] || [ ! -d "$ROOT/.gloo-include/gloo" ] ||
    args+=(-DKHSGD_GLOO_INCLUDE_DIR="$ROOT/.gloo-include")
  printf '  %s\n' "${args[@]}"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" ${KHSGD_CMAKE_ARGS:-} ||
    return 1
  cmake --build "$BUILD" || return 1
  "$ROOT/scripts/check-gloo-mix.sh" "$BUILD" || return 1
  "$TRAIN" --version
  "$TRAIN" --version | grep -q "CUDA engine: yes" || { echo "built without the CUDA engine"; return 1; }
}

ctest_stage() {  # ctest arguments: the tests to run
  ctest --test-dir "$BUILD" --output-on-failure --no-tests=error --timeout 300 "$@"
}

# Metrics without the timing columns, and every rank's orders, of the run folders under $1 and $2.
same_runs() {
  local a b
  a=$(find "$1" -name metrics.csv 2> /dev/null | head -1)
  b=$(find "$2" -name metrics.csv 2> /dev/null | head -1)
  [ -n "$a" ] && [ -n "$b" ] || { echo "no results under $1 or $2 to compare"; return 1; }
  a=$(dirname "$a")
  b=$(dirname "$b")
  diff <(cut -d, -f1-5 "$a/metrics.csv") <(cut -d, -f1-5 "$b/metrics.csv") || return 1
  for orders in "$a"/orders-rank*.csv; do
    cmp "$orders" "$b/$(basename "$orders")" || return 1
  done
  echo "identical: $a and $b"
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

torchrun_stage() {
  local torchrun=("$(dirname "$PYTHON")/torchrun")
  [ -x "${torchrun[0]}" ] || torchrun=("$PYTHON" -m torch.distributed.run)
  local small=(--dataset synthetic --synthetic_rows 4000 --epochs 2 --lr 5e-3 --save_orders --quiet)
  local status=0
  echo "== torchrun --nproc_per_node=2 --no_python (gloo, cpu) against scripts/launch.sh 2"
  "${torchrun[@]}" --nproc_per_node=2 --master_port "$(free_port)" --no_python "$TRAIN" "${small[@]}" \
    --sorter CD-GraB --device cpu --backend gloo --results_dir "$SCRATCH/torchrun2" || status=1
  KHSGD_TRAIN=$TRAIN "$ROOT/scripts/launch.sh" 2 -- "${small[@]}" --sorter CD-GraB --device cpu \
    --backend gloo --results_dir "$SCRATCH/launch2" || status=1
  same_runs "$SCRATCH/torchrun2" "$SCRATCH/launch2" || status=1
  echo "== torchrun --nproc_per_node=1 --no_python --device cuda --backend nccl against a plain run"
  NCCL_DEBUG=INFO "${torchrun[@]}" --nproc_per_node=1 --master_port "$(free_port)" --no_python "$TRAIN" \
    "${small[@]}" --sorter KH-SGD --device cuda --backend nccl --results_dir "$SCRATCH/nccl1" \
    > "$SCRATCH/nccl1.log" 2>&1 || status=1
  cat "$SCRATCH/nccl1.log"
  grep -q "NCCL INFO" "$SCRATCH/nccl1.log" || { echo "NCCL never initialised"; status=1; }
  "$TRAIN" "${small[@]}" --sorter KH-SGD --device cuda --results_dir "$SCRATCH/plain1" || status=1
  same_runs "$SCRATCH/nccl1" "$SCRATCH/plain1" || status=1
  echo "== ctest -R Torchrun"
  if ctest --test-dir "$BUILD" -N -R Torchrun | grep -q "Total Tests: 0"; then
    echo "no Torchrun test in this build"
  else
    ctest_stage -R Torchrun || status=1
  fi
  return $status
}

# The Python module's pytest (ctest python_module, run with -V for pytest's lines); where configure
# left the module out, says so with configure's reason instead of ctest's "No tests were found".
python_stage() {
  if ctest --test-dir "$BUILD" -N -R "^python_module$" | grep -q "Total Tests: 0"; then
    echo "the Python module or its test was not built; configure said:"
    grep -h "khsgd: Python module\|lacks torch or pytest" "$LOGS/build.log" 2> /dev/null
    return 1
  fi
  ctest_stage -R "^python_module$" -V
}

# compute-sanitizer --tool $1 on one epoch of each sorter that runs on the GPU, all at once; given
# khsgd_train_run itself, which khsgd_train would exec for a --device cuda run.
sanitizer_stage() {
  local tool=$1 sanitizer status=0
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
              /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  [ -n "$sanitizer" ] || { echo "compute-sanitizer not found"; return 1; }
  local pids=() sorter sorters
  sorters=$("$TRAIN" --list-sorters --device cuda | cut -f1) || return 1
  for sorter in $sorters; do
    "$sanitizer" --tool "$tool" --error-exitcode 9 "${TRAIN}_run" --dataset synthetic --synthetic_rows 4000 \
      --epochs 1 --lr 5e-3 --device cuda --sorter "$sorter" --quiet \
      --results_dir "$SCRATCH/$tool-$sorter" > "$SCRATCH/$tool-$sorter.log" 2>&1 &
    pids+=($!)
  done
  local i=0
  for sorter in $sorters; do
    if wait "${pids[$i]}"; then echo "$sorter: clean"; else echo "$sorter: FAILED"; status=1; fi
    sed 's/^/    /' "$SCRATCH/$tool-$sorter.log" | grep -v "^    $" | tail -15
    i=$((i + 1))
  done
  return $status
}

bench_stage() {
  # Three rounds of the one-rank CPU ratios, not five: the device's minutes are for the GPU's
  # numbers (with two, the "median" would be the better round).
  KHSGD_TRAIN=$TRAIN "$ROOT/scripts/bench.sh" --devices "cuda cpu" --epochs 4 --rounds 3
}

export -f build_stage ctest_stage python_stage same_runs free_port torchrun_stage sanitizer_stage \
  bench_stage

# --- The run.
{
  echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) cores"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
} | tee "$LOGS/machine.txt"

stage build 420 build_stage
if [ -x "$TRAIN" ] && "$TRAIN" --version 2> /dev/null | grep -q "CUDA engine: yes"; then
  # The CPU suite and the Python module's tests need little of the GPU: they run beside the GPU
  # stages, which wait on the device.
  stage_beside cpu-suite 360 ctest_stage -LE gpu -E "^python_module$" -j 10
  stage_beside python 240 python_stage
  stage golden-gpu 180 ctest_stage -R GoldenGpu -j 4
  stage kernels 240 ctest_stage -R "KernelChecks|GpuSorters|GpuEngine"
  stage backends 300 ctest_stage -R GpuBackends
  stage torchrun 180 torchrun_stage
  stage memcheck 300 sanitizer_stage memcheck
  stage racecheck 300 sanitizer_stage racecheck
  finish_beside
  stage bench 240 bench_stage
else
  for name in cpu-suite python golden-gpu kernels backends torchrun memcheck racecheck bench; do
    wanted "$name" && record "$name" skipped 0 "(no CUDA build)"
  done
fi

# --- The summary.
{
  echo
  echo "gpu-check summary ($(( $(date +%s) - started )) s in all)"
  cat "$LOGS/machine.txt"
  printf '%-10s %-8s %8s  %s\n' stage result seconds log
  for i in "${!names[@]}"; do
    printf '%-10s %-8s %8s  %s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}" "${logfiles[$i]}"
  done
  for log in golden-gpu kernels backends python cpu-suite; do
    # ctest's count, and pytest's (printed by ctest -V as "N: ..." and again on failure: once)
    [ -f "$LOGS/$log.log" ] && grep -E "tests passed|tests failed|^([0-9]+: )?[0-9]+ (passed|failed)" \
      "$LOGS/$log.log" | sed -E "s/^[0-9]+: //; s/^/$log: /" | awk '!seen[$0]++'
  done
  [ -f "$LOGS/bench.log" ] && { echo; cat "$LOGS/bench.log"; }
} | tee "$LOGS/summary.txt"
grep -qE " (FAILED|TIMEOUT|skipped) " "$LOGS/summary.txt" && exit 1
exit 0
