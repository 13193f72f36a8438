#!/usr/bin/env bash
# Runs one fuzz target (tests/fuzz/build.sh builds them) over its committed seeds and regression
# inputs, for SECONDS seconds, one process. New inputs go to OUT_DIR/corpus/TARGET (the committed
# folders are only read); a crash is written to OUT_DIR/artifacts/TARGET/ and fails the run.
#
#   tests/fuzz/run.sh TARGET SECONDS [OUT_DIR]   # TARGET: pt_reader, zip_archive or checkpoint
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=$1
seconds=$2
out=${3:-$root/build-fuzz}
binary="$out/fuzz_$target"
[ -x "$binary" ] || { echo "fuzz: $binary is missing; run tests/fuzz/build.sh first" >&2; exit 2; }
mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
case $target in
  pt_reader | zip_archive) dictionary=(-dict="$here/torch_save.dict") ;;
  checkpoint) dictionary=(-dict="$here/checkpoint.dict") ;;
  *) echo "fuzz: unknown target '$target' (pt_reader, zip_archive or checkpoint)" >&2; exit 2 ;;
esac
# -max_len: the seeds are small (< 16 KiB); -rss_limit_mb: a reader that allocates what a file
# only declares shows up as an out-of-memory finding. ASan's leak check stays on (a leak is a
# finding too).
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
"$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
  -print_final_stats=1 "${dictionary[@]}" -artifact_prefix="$out/artifacts/$target/" \
  "$out/corpus/$target" "$here/corpus/$target" "$here/regressions/$target"
