#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: the command CI runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
# Where nvcc is installed, also compile-check the CUDA kernels (no CUDA LibTorch needed).
cuda_check=()
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
[ -n "$nvcc" ] && cuda_check=(-DKHSGD_CHECK_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_check[@]}"
cmake --build build
ctest --test-dir build -j2 --output-on-failure

# The same code under AddressSanitizer + UndefinedBehaviorSanitizer (khsgd's own code; LibTorch
# uninstrumented): the unit tests, the seven golden runs and the reliability tests (resume, lost
# ranks, the run lock, clean stops, checkpoints, a full disk). Any finding fails the test it
# happens in; tests/sanitizers/ holds the settings and the suppressions.
sanitizer_start=$(date +%s)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DKHSGD_SANITIZE=ON
cmake --build build-asan --target khsgd_train khsgd_unit_tests khsgd_run_tests khsgd_store_server
. tests/sanitizers/options.sh
build-asan/tests/khsgd_unit_tests --gtest_brief=1  # one process: ctest -L unit starts one per test
ctest --test-dir build-asan -j2 --output-on-failure \
      -R '^(AllSevenRuns/GoldenCpu|Resume|ExistingResults|DeadRank|FolderLock|FlagAgreement|CleanStop|Checkpoints|IoFailures)\.'
echo "sanitizer stage: $(($(date +%s) - sanitizer_start)) s"
