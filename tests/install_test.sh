#!/usr/bin/env bash
# cmake --install gives a working khsgd: PREFIX/bin/khsgd_train runs from any folder, and the
# installed scripts find it on their own (no KHSGD_TRAIN) and run a 2-rank job and its summary.
#
#   tests/install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

unset KHSGD_TRAIN
cd "$work"  # nowhere near the checkout or the build
"$prefix/bin/khsgd_train" --version | grep -q '^khsgd_train ' || { echo "FAIL: --version"; exit 1; }
for f in share/khsgd/scripts/launch.sh share/khsgd/scripts/sweep.sh share/khsgd/scripts/bench.sh \
         share/khsgd/scripts/floor.c share/khsgd/scripts/barrier.c \
         share/khsgd/plots/plot_figures.py share/khsgd/plots/summarize.py share/doc/khsgd/ALGORITHM.md; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f is not installed"; exit 1; }
done
flags=(--dataset synthetic --synthetic_rows 2000 --epochs 2 --device cpu --backend gloo --quiet
       --results_dir "$work/results")
"$prefix/share/khsgd/scripts/launch.sh" 2 -- "${flags[@]}" > "$work/run.log" 2>&1 ||
  { echo "FAIL: the installed launch.sh"; cat "$work/run.log"; exit 1; }
run=$("$prefix/bin/khsgd_train" "${flags[@]}" --node_cnt 2 --print_run_dir)
grep -q '"finished": true' "$run/summary.json" || { echo "FAIL: no finished run in $run"; exit 1; }
[ "$(wc -l < "$run/metrics.csv")" -eq 3 ] || { echo "FAIL: metrics.csv"; cat "$run/metrics.csv"; exit 1; }
python3=/usr/bin/python3
if "$python3" -c "import numpy" 2> /dev/null; then
  "$python3" "$prefix/share/khsgd/plots/summarize.py" "$(dirname "$run")" | grep -q "CD-GraB" ||
    { echo "FAIL: the installed summarize.py"; exit 1; }
fi
echo "installed to $prefix: khsgd_train, the scripts and the plot tools work from $work"
