#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: the command CI runs. Two
# configurations: Debian's LibTorch 1.13 (CPU; build/, the README's newcomer path) and PyTorch 2.x
# from PyPI with CUDA (build-pip/, .venv/: the LibTorch GPU users have). KHSGD_TORCH_PIP=0 leaves
# the second out (it downloads about 3 GB once and needs about 5 GB of disk).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
torch_pip=${KHSGD_TORCH_PIP:-1}
# ccache (CMakeLists.txt uses it where installed) keyed on paths relative to this checkout, so a
# fresh clone elsewhere on the machine (CI) reuses what an earlier one compiled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
if [ "$torch_pip" = 1 ]; then scripts/install-deps.sh --torch-pip; else scripts/install-deps.sh; fi
# Where nvcc is installed, also compile-check the CUDA kernels (no CUDA LibTorch needed).
cuda_check=()
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
[ -n "$nvcc" ] && cuda_check=(-DKHSGD_CHECK_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
# Warnings are errors here (-DKHSGD_WERROR=ON); a user's build only shows them.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKHSGD_WERROR=ON -DKHSGD_PYTHON=/usr/bin/python3 \
      "${cuda_check[@]}"
cmake --build build
# Style and static checks first: zero findings (clang-format, clang-tidy; scripts/lint.sh).
lint_start=$(date +%s)
scripts/lint.sh
echo "lint stage: $(($(date +%s) - lint_start)) s"
ctest --test-dir build -j2 --output-on-failure

# The second configuration: LibTorch 2.x from the PyPI wheel in .venv/ (scripts/requirements-torch.txt
# pins it), CUDA 13 from /usr/local/cuda: every target, the CUDA engine, the NCCL backend and the
# GPU tests included, compiles and links with -Werror; the whole suite runs on it (GPU tests skip
# with their reason here), with the venv's python and torchrun.
if [ "$torch_pip" = 1 ]; then
  pip_start=$(date +%s)
  # Into a variable first, so that set -e stops here when torch cannot be imported (a process
  # substitution's failure goes unseen, and configure would then find Debian's LibTorch instead).
  torch_args_text=$(scripts/torch-cmake-args.sh .venv/bin/python)
  mapfile -t torch_args <<< "$torch_args_text"
  cmake -S . -B build-pip -G Ninja -DCMAKE_BUILD_TYPE=Release -DKHSGD_WERROR=ON "${torch_args[@]}"
  cmake --build build-pip
  build-pip/khsgd_train --version
  scripts/check-gloo-mix.sh build-pip
  # The venv has grab-sampler (scripts/requirements-torch.txt): its comparison must run, not skip.
  PATH=$PWD/.venv/bin:$PATH KHSGD_REQUIRE_TORCHRUN=1 KHSGD_REQUIRE_GRAB=1 \
    ctest --test-dir build-pip -j2 --output-on-failure
  echo "pip stage: $(($(date +%s) - pip_start)) s"
fi

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
      -R '^(AllSevenRuns/GoldenCpu|Resume|ExistingResults|DeadRank|FolderLock|FlagAgreement|CleanStop|Checkpoints|IoFailures|UntrustedFolder)\.'
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
