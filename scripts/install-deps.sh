#!/usr/bin/env bash
# Installs what khsgd needs to build, test and plot on Debian 12 (bookworm): LibTorch 1.13 (CPU)
# with c10d/Gloo, cxxopts, spdlog, GoogleTest, Open MPI (mpirun, and the library the mpi backend
# is built on), python3-matplotlib for the figures, and python3-torch (PyTorch 1.13, with its
# torchrun) for the tests that load our torch.save files in Python and launch through torchrun,
# clang-format and clang-tidy for scripts/lint.sh, clang-14 with its sanitizer and libFuzzer
# runtimes (libclang-rt-14-dev) for the fuzz targets of tests/fuzz/.
# Does nothing when everything is there already. Needs root (or sudo).
#
#   scripts/install-deps.sh               Debian's packages (the newcomer's configuration)
#   scripts/install-deps.sh --torch-pip   also PyTorch 2.x from PyPI into .venv/ (the version in
#                                         scripts/requirements-torch.txt), for the second
#                                         configuration (scripts/test.sh builds build-pip with it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
torch_pip=0
[ "${1:-}" = "--torch-pip" ] && torch_pip=1

packages=(build-essential cmake ninja-build ccache gzip
          libtorch-dev libgloo-dev libcxxopts-dev libspdlog-dev libgtest-dev
          openmpi-bin libopenmpi-dev python3 python3-matplotlib python3-numpy python3-torch
          python3-dev pybind11-dev python3-pytest
          clang-format clang-tidy clang-14 libclang-rt-14-dev)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: every Debian package is installed"
else
  if [ -n "$sudo" ]; then
    command -v sudo > /dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ $torch_pip -eq 1 ] || exit 0

# --- PyTorch from PyPI: .venv/ (git-ignored) links to a venv kept per pinned version under
# ~/.cache/khsgd (KHSGD_VENV_CACHE), so that another clone on this machine (CI's fresh clone)
# reuses it instead of downloading about 3 GB again. A .venv/ that is a folder of its own is used
# as it is.
requirements=scripts/requirements-torch.txt
pinned=$(sed -n 's/^torch==//p' "$requirements")
# Packages pinned as "# no-deps: NAME==VERSION" go in without their dependencies.
no_deps=$(sed -n 's/^# no-deps: //p' "$requirements")
venv=.venv
shared=${KHSGD_VENV_CACHE:-$HOME/.cache/khsgd}/venv-torch-$pinned
if [ -L "$venv" ] || [ ! -e "$venv" ]; then
  mkdir -p "$(dirname "$shared")"
  ln -sfn "$shared" "$venv"
  target=$shared
else
  target=$venv
fi
if [ -x "$venv/bin/python" ] &&
   [ "$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0], bool(torch.version.cuda))' 2>/dev/null)" = "$pinned True" ]; then
  # The pin's Linux wheel is the CUDA one: a CPU-only local build of the same version (2.11.0+cpu)
  # would satisfy ==2.11.0 but leave the CUDA configuration untested.
  # torchrun runs (its #! names an interpreter that exists: the tests call it by name, and a
  # script whose interpreter is gone is passed over for the next torchrun on PATH, Debian's).
  # The right torch with a small package missing (a new pin): installed into it, not made again.
  plan=$("$venv/bin/python" -m pip install --dry-run -r "$requirements" 2>/dev/null) &&
    { ! grep -q "Would install" <<< "$plan" || "$venv/bin/python" -m pip install -q -r "$requirements"; } &&
    { [ -z "$no_deps" ] || "$venv/bin/python" -m pip install -q --no-deps $no_deps; } &&
    "$venv/bin/torchrun" --help > /dev/null 2>&1 && {
      echo "install-deps: $venv ($target) has torch $pinned and the test packages"; exit 0; }
fi
# Not usable as it is: the shared venv is made again from scratch; a .venv/ folder of the user's
# own is only installed into.
[ "$target" = "$shared" ] && rm -rf "$target"
# A Python 3.10+ with venv: the one on PATH (this machine's pyenv), else Debian's (python3-venv).
python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    python=$candidate; break
  fi
done
if [ -z "$python" ]; then
  $sudo apt-get install -y -qq --no-install-recommends python3-venv
  python=/usr/bin/python3
fi
start=$(date +%s)
[ -x "$target/bin/python" ] || "$python" -m venv "$target"
# pip through the venv's own path, not the .venv link: the scripts it installs (torchrun) name
# their interpreter by that path, and a clone's .venv link goes away with the clone.
"$target/bin/python" -m pip install -q --upgrade pip
"$target/bin/python" -m pip install -q -r "$requirements"
[ -z "$no_deps" ] || "$target/bin/python" -m pip install -q --no-deps $no_deps
echo "install-deps: $venv ($target): torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')" \
     "and the test packages in $(( $(date +%s) - start )) s; $(du -shL "$target" | cut -f1) on disk"
