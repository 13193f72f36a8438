#!/usr/bin/env bash
# The configure arguments for building khsgd against the LibTorch inside a Python installation of
# PyTorch (a pip wheel), one per line, for scripts/test.sh (CI's build-pip) and
# scripts/gpu-check.sh, so that both build the same way:
#
#   mapfile -t args < <(scripts/torch-cmake-args.sh PYTHON)
#   cmake -S . -B build-pip "${args[@]}"
#
# - CMAKE_PREFIX_PATH: torch's CMake package, and torch's own folder first, so that its
#   lib/libtorch.so is found before a system LibTorch (Debian's /usr/lib libtorch.so would
#   otherwise win: TorchConfig looks for its libraries with PATHS, searched after system folders);
# - the CUDA compiler where torch has CUDA: nvcc on PATH, else /usr/local/cuda's;
# - KHSGD_NCCL_INCLUDE_DIR: the nvidia-nccl wheel's headers, the NCCL that torch was built with and
#   loads (ProcessGroupNCCL.hpp lays out its classes by the NCCL version), before the toolkit's;
# - KHSGD_PYTHON: this python, for the tests that torch.load khsgd's files and run the plot tools.
# Gloo: the wheels ship no Gloo headers; CMake then finds Debian's libgloo-dev (see CMakeLists.txt).
set -euo pipefail
python=${1:?usage: $0 PYTHON}
"$python" - <<'PY'
import os, shutil, sys, torch
root = os.path.dirname(torch.__file__)
print(f"-DCMAKE_PREFIX_PATH={root};{torch.utils.cmake_prefix_path}")
print(f"-DKHSGD_PYTHON={sys.executable}")
if torch.version.cuda:
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    print(f"-DCMAKE_CUDA_COMPILER={nvcc}")
    try:
        import nvidia.nccl
        for path in nvidia.nccl.__path__:
            if os.path.exists(os.path.join(path, "include", "nccl.h")):
                print(f"-DKHSGD_NCCL_INCLUDE_DIR={os.path.join(path, 'include')}")
                break
    except ImportError:
        pass
PY
