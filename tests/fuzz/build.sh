#!/usr/bin/env bash
# Builds the libFuzzer targets of the readers of untrusted files (issue 18) with clang:
#   fuzz_pt_reader    torch.save files (pt_reader.cpp through zip_archive.cpp)
#   fuzz_zip_archive  the zip container alone (zip_archive.cpp)
#   fuzz_checkpoint   checkpoints (checkpoint.cpp, state_io.cpp, pair_setup.cpp's sorter state)
#   make_seeds        writes the crafted seed files (tests/fuzz/corpus/README.md)
# These readers are plain C++ without LibTorch, so they are compiled here straight from src/ with
# -fsanitize=fuzzer,address,undefined, apart from the gcc-built LibTorch and the CMake build.
#
#   tests/fuzz/build.sh [OUT_DIR]      # default: build-fuzz/ (ignored by git)
#
# Needs clang++-14 (or $KHSGD_FUZZ_CXX) and its libFuzzer runtime: Debian's clang-14 and
# libclang-rt-14-dev (scripts/install-deps.sh installs both).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$root/build-fuzz}
cxx=${KHSGD_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
[ -n "$cxx" ] || { echo "fuzz build: clang++ not found (scripts/install-deps.sh installs clang-14)" >&2; exit 2; }
mkdir -p "$out/obj"

# -O1 -g: line numbers in the reports; UBSan findings abort (a finding, not a warning).
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -Wall -Wextra -Werror -I"$root/include" -I"$root/tests")
sources=(data/byte_source data/zip_archive data/pt_reader sorting/state_io sorting/pair_setup
         run/checkpoint data/files run/run_limits)
objects=()
pids=()
for s in "${sources[@]}"; do
  # fuzzer-no-link: coverage instrumentation for the library code, libFuzzer's main at link time.
  o=$out/obj/$(basename "$s").o
  "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$root/src/$s.cpp" -o "$o" &
  pids+=($!)
  objects+=("$o")
  # Two compilers at a time: wait for the older one.
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done  # each wait fails the script if its compile did
for target in pt_reader zip_archive checkpoint; do
  "$cxx" "${flags[@]}" -fsanitize=fuzzer "$root/tests/fuzz/fuzz_$target.cpp" "${objects[@]}" \
    -o "$out/fuzz_$target"
done
"$cxx" "${flags[@]}" "$root/tests/fuzz/make_seeds.cpp" "${objects[@]}" -o "$out/make_seeds"
echo "fuzz build: $out/fuzz_{pt_reader,zip_archive,checkpoint}"
