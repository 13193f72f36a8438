#!/usr/bin/env bash
# Runs sorters x seeds with the paper's settings and prints a summary table at the end.
#
#   scripts/sweep.sh [--sorters "D-RR CD-GraB SBW KH-SGD"] [--seeds "1 2 3 4 5"] [--ranks N]
#                    [--epochs 50] [--lr 5e-3] [--B 16] [--dataset hmda|synthetic]
#                    [--results_dir results] [--exp LR-HMDA] [-- more khsgd_train flags]
#
# Runs whose folder holds a finished run (summary.json) are skipped, so an interrupted sweep
# continues where it stopped; an unfinished one resumes from its checkpoint (or starts over when
# it has none). A run that another process is running (a second sweep on the same folder) is
# left to it. Each run's output is appended to RESULTS_DIR/EXP-EPOCHS/logs/RUN.log. Several
# ranks per run go through scripts/launch.sh. The binary is $KHSGD_TRAIN or build/khsgd_train.
set -uo pipefail

sorters="D-RR CD-GraB SBW KH-SGD"
seeds="1 2 3 4 5"
ranks=1
epochs=50
lr=5e-3
batch=16
dataset=hmda
results_dir=results
exp=LR-HMDA
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sorters) sorters=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --lr) lr=$2; shift 2 ;;
    --B) batch=$2; shift 2 ;;
    --dataset) dataset=$2; shift 2 ;;
    --results_dir) results_dir=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "sweep: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
case "$ranks" in '' | *[!0-9]* | 0) echo "sweep: --ranks must be a positive integer" >&2; exit 2 ;; esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KHSGD_TRAIN=${KHSGD_TRAIN:-$here/../build/khsgd_train}
# The summary needs numpy: $PYTHON, else the first python3 that has it (Debian's python3-numpy).
python=""
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then python=$candidate; break; fi
done
[ -n "$python" ] || { echo "sweep: no python3 with numpy (install python3-numpy)" >&2; exit 2; }
[ -x "$KHSGD_TRAIN" ] || { echo "sweep: $KHSGD_TRAIN is missing; build first" >&2; exit 2; }
# The run folder's name carries --lr as Python's repr() writes it (0.005, 1e-05).
lr_text=$("$python" -c "import sys; print(repr(float(sys.argv[1])))" "$lr") || {
  echo "sweep: --lr '$lr' is not a number" >&2; exit 2; }
data_tag=$([ "$dataset" = synthetic ] && echo synthetic || echo hmda)
exp_dir=$results_dir/$exp-$epochs
logs=$exp_dir/logs
mkdir -p "$logs" || exit 2

total=0
for _ in $sorters; do for _ in $seeds; do total=$((total + 1)); done; done
index=0
failed=0
for sorter in $sorters; do
  for seed in $seeds; do
    index=$((index + 1))
    name=LR-$data_tag-$sorter-node-$ranks-lr-$lr_text-B-$batch-seed-$seed
    run=$exp_dir/$name
    if grep -qs '"finished": true' "$run/summary.json"; then
      echo "[$index/$total] $sorter seed $seed: finished earlier, skipped"
      continue
    fi
    resume=()
    if [ -d "$run" ]; then
      # Unfinished: continue from its checkpoint, or start it over when it has none.
      if [ -f "$run/checkpoint-rank0.bin" ]; then resume=(--resume); else resume=(--overwrite); fi
    fi
    args=(--sorter "$sorter" --seed "$seed" --epochs "$epochs" --lr "$lr" --B "$batch"
          --dataset "$dataset" --results_dir "$results_dir" --exp "$exp" "${resume[@]}" "${extra[@]}")
    start=$(date +%s.%N)
    if [ "$ranks" -eq 1 ]; then
      "$KHSGD_TRAIN" "${args[@]}" >> "$logs/$name.log" 2>&1
    else
      "$here/launch.sh" "$ranks" -- "${args[@]}" >> "$logs/$name.log" 2>&1
    fi
    status=$?
    seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if [ $status -eq 0 ]; then
      echo "[$index/$total] $sorter seed $seed: done in $seconds s${resume:+ (${resume[0]#--})}"
    elif [ $status -eq 2 ] && tail -2 "$logs/$name.log" | grep -q "is in use by another run\|already holds a finished run"; then
      echo "[$index/$total] $sorter seed $seed: running elsewhere, left to it:"
      tail -1 "$logs/$name.log" | sed 's/^/    /'
    else
      failed=$((failed + 1))
      echo "[$index/$total] $sorter seed $seed: FAILED (status $status), see $logs/$name.log:"
      tail -2 "$logs/$name.log" | sed 's/^/    /'
    fi
  done
done

"$python" "$here/../plots/summarize.py" "$exp_dir" || true
[ $failed -eq 0 ] || { echo "sweep: $failed run(s) failed" >&2; exit 1; }
