#!/usr/bin/env bash
# Style and static checks, both with zero findings (CI runs this):
#   clang-format: every C++/CUDA source and header matches .clang-format;
#   clang-tidy:   the checks in .clang-tidy over src/*.cpp, using build/compile_commands.json.
#
#   scripts/lint.sh [--fix]     # --fix rewrites the files clang-format would change
#
# Needs a configured build folder (cmake -S . -B build; CMAKE_EXPORT_COMPILE_COMMANDS is on).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${KHSGD_BUILD_DIR:-build}
fix=0
[ "${1:-}" = "--fix" ] && fix=1

clang_format=$(command -v clang-format || command -v clang-format-14 || true)
clang_tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
[ -n "$clang_format" ] && [ -n "$clang_tidy" ] || {
  echo "lint: clang-format and clang-tidy are needed (scripts/install-deps.sh installs them)" >&2; exit 2; }
[ -f "$build/compile_commands.json" ] || {
  echo "lint: $build/compile_commands.json is missing; configure first: cmake -S . -B $build" >&2; exit 2; }

mapfile -t sources < <(git ls-files 'src/*.cpp' 'src/*.inc' 'src/*.cu' 'src/*.cuh' 'include/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'tests/*.cu' 'python/src/*.cpp')
status=0
if [ $fix -eq 1 ]; then
  "$clang_format" -i "${sources[@]}"
else
  format_findings=$("$clang_format" --dry-run "${sources[@]}" 2>&1 | grep -c "warning:" || true)
  echo "lint: clang-format: $format_findings finding(s) in ${#sources[@]} files"
  if [ "$format_findings" -ne 0 ]; then
    "$clang_format" --dry-run "${sources[@]}" 2>&1 | grep "warning:" | cut -d: -f1 | sort | uniq -c | head -20
    echo "lint: run scripts/lint.sh --fix to apply the style" >&2
    status=1
  fi
fi

# clang-tidy over the C++ sources (the CUDA ones need nvcc's headers; nvcc compile-checks them).
mapfile -t tidy_sources < <(git ls-files 'src/*.cpp')
tidy_log=$(mktemp)
trap 'rm -f "$tidy_log"' EXIT
printf '%s\n' "${tidy_sources[@]}" |
  xargs -P "$(nproc)" -n 1 "$clang_tidy" -p "$build" --quiet > "$tidy_log" 2>/dev/null
tidy_findings=$(grep -cE "^/.*: (warning|error):" "$tidy_log" || true)
echo "lint: clang-tidy: $tidy_findings finding(s) in ${#tidy_sources[@]} files"
if [ "$tidy_findings" -ne 0 ]; then
  grep -E "^/.*: (warning|error):" "$tidy_log" | sort -u | head -40
  status=1
fi
exit $status
