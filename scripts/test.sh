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
