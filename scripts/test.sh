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
# Warnings are errors here (-DKHSGD_WERROR=ON); a user's build only shows them.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKHSGD_WERROR=ON "${cuda_check[@]}"
cmake --build build
# Style and static checks first: zero findings (clang-format, clang-tidy; scripts/lint.sh).
lint_start=$(date +%s)
scripts/lint.sh
echo "lint stage: $(($(date +%s) - lint_start)) s"
ctest --test-dir build -j2 --output-on-failure

# The same code under AddressSanitizer + UndefinedBehaviorSanitizer (khsgd's own code; LibTorch
# uninstrumented): the unit tests, the seven golden runs and the reliability tests (resume, lost
# ranks, the run lock, clean stops, checkpoints, a full disk). Any finding fails the test it
# happens in; tests/sanitizers/ holds the settings and the suppressions.
sanitizer_start=$(date +%s)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DKHSGD_SANITIZE=ON
cmake --build build-asan --target khsgd_train khsgd_unit_tests khsgd_torch_tests khsgd_run_tests \
      khsgd_store_server
. tests/sanitizers/options.sh
# The unit tests, the loader of untrusted files (and its fuzz loop), and the runs.
ctest --test-dir build-asan -j2 --output-on-failure -L unit
ctest --test-dir build-asan -j2 --output-on-failure -R '^(Loader|LoaderFuzz)\.'
ctest --test-dir build-asan -j2 --output-on-failure \
      -R '^(AllSevenRuns/GoldenCpu|Resume|ExistingResults|DeadRank|FolderLock|FlagAgreement|CleanStop|Checkpoints|IoFailures)\.'
echo "sanitizer stage: $(($(date +%s) - sanitizer_start)) s"

# --- fuzz stage (issue 18): the libFuzzer targets of the readers of untrusted files -------------
# tests/fuzz/build.sh compiles the torch.save, zip and checkpoint readers with clang++-14
# -fsanitize=fuzzer,address,undefined (no LibTorch); each target then runs for a minute over its
# committed seeds and regression inputs (tests/fuzz/run.sh). Any crash, sanitizer report, leak or
# runaway allocation fails CI, the input written under build-fuzz/artifacts/TARGET/.
fuzz_start=$(date +%s)
tests/fuzz/build.sh build-fuzz
for target in pt_reader zip_archive checkpoint; do
  tests/fuzz/run.sh "$target" 60 build-fuzz
done
echo "fuzz stage: $(($(date +%s) - fuzz_start)) s"
# --- end of the fuzz stage ---------------------------------------------------------------------
