#!/usr/bin/env bash
# Installs what khsgd needs to build, test and plot on Debian 12 (bookworm): LibTorch 1.13 (CPU)
# with c10d/Gloo, cxxopts, spdlog, GoogleTest, Open MPI (mpirun, and the library the mpi backend
# is built on), python3-matplotlib for the figures, and python3-torch (PyTorch 1.13, with its
# torchrun) for the tests that load our torch.save files in Python and launch through torchrun,
# clang-format and clang-tidy for scripts/lint.sh, clang-14 with its sanitizer and libFuzzer
# runtimes (libclang-rt-14-dev) for the fuzz targets of tests/fuzz/.
# Does nothing when everything is there already. Needs root (or sudo).
set -euo pipefail

packages=(build-essential cmake ninja-build ccache gzip
          libtorch-dev libgloo-dev libcxxopts-dev libspdlog-dev libgtest-dev
          openmpi-bin libopenmpi-dev python3 python3-matplotlib python3-numpy python3-torch
          clang-format clang-tidy clang-14 libclang-rt-14-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo > /dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
