#!/usr/bin/env bash
# The sorters library as an installed CMake package: cmake --install BUILD_DIR into a fresh
# prefix, then tests/consumer, a project of its own, finds it (find_package(khsgd) with
# CMAKE_PREFIX_PATH=prefix only), builds against it and runs. Fails when an installed header
# includes one that is not installed, when the plain consumer's link line or loaded libraries
# carry LibTorch, spdlog, cxxopts or fmt, or when an order differs from the hand-worked one.
#
#   tests/consumer_test.sh BUILD_DIR CXX_COMPILER [EXTRA_CXX_FLAGS]
set -euo pipefail
build=$1
cxx=$2
extra_flags=${3:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" > "$work/install.log"
config=$prefix/lib/cmake/khsgd/khsgdConfig.cmake
[ -f "$config" ] || config=$(find "$prefix" -name khsgdConfig.cmake | head -1)
[ -f "$config" ] || fail "no khsgdConfig.cmake under $prefix"

# Every header an installed header includes is installed too.
while IFS= read -r header; do
  for included in $(sed -n 's/^#include "\(khsgd\/[^"]*\)"/\1/p' "$header"); do
    [ -f "$prefix/include/$included" ] || fail "${header#"$prefix"/include/} includes $included, not installed"
  done
done < <(find "$prefix/include/khsgd" -name '*.hpp')

# The consumer sees the prefix and nothing else of khsgd's (no package registry, no build tree).
cmake -S "$here/consumer" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$extra_flags" \
      -DCMAKE_EXE_LINKER_FLAGS="$extra_flags" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "configuring the consumer"; }
grep -q "khsgd package: $prefix/" "$work/configure.log" ||
  { cat "$work/configure.log"; fail "find_package(khsgd) did not find the installed package"; }
cmake --build "$work/build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building"; }

# khsgd::sorters alone brings no LibTorch, spdlog, cxxopts or fmt: not on the link line, not
# loaded, no symbols of theirs.
plain=$work/build/sorters_consumer
# (Library names, not bare words: the prefix is a random mktemp name.)
unwanted='libtorch|libc10|spdlog|cxxopts|libfmt'
link_line=$(ninja -C "$work/build" -t commands sorters_consumer | tail -1)
if grep -Eq "$unwanted" <<< "$link_line"; then fail "sorters_consumer links: $link_line"; fi
# Outputs into variables first: `cmd | grep -q` under pipefail fails when grep stops early and cmd
# dies of SIGPIPE, and a forbidden library would then pass unseen.
loaded=$(ldd "$plain")
if grep -Eq "$unwanted" <<< "$loaded"; then echo "$loaded"; fail "sorters_consumer loads these"; fi
symbols=$(nm -C "$plain")
if grep -Eq 'spdlog::|cxxopts::|fmt::|c10::|at::' <<< "$symbols"; then
  fail "sorters_consumer holds symbols of spdlog, cxxopts, fmt or LibTorch"
fi

expected=$(cat "$here/consumer/expected.txt")
if grep -q 'set(khsgd_WITH_CUDA ON)' "$config"; then
  expected=${expected/Device::Cuda without CUDA: UserError/Device::Cuda: this build has the CUDA twins}
fi
got=$("$plain") || fail "sorters_consumer exited $?"
[ "$got" = "$expected" ] || { diff <(echo "$expected") <(echo "$got"); fail "sorters_consumer's output"; }
"$work/build/draws_consumer" || fail "draws_consumer"
echo "the installed khsgd package builds and runs tests/consumer ($prefix)"
