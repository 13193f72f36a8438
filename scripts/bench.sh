#!/usr/bin/env bash
# Seconds per training epoch of every sorter on the full-size synthetic set (195 285 x 20), the
# ways of running several workers side by side: ranks over gloo (scripts/launch.sh), ranks over
# mpi (mpirun), and workers inside one process (--in_process). Each time is the median over the
# epochs after the first (which pays for page faults and warm-up); evaluation, rank 0's peak
# resident memory and, on the GPU, the peak of khsgd's own device buffers are those of the first
# mode that ran. One rank is one plain process whatever the mode: it is run once and shown in
# every column.
#
#   scripts/bench.sh [--epochs N] [--ranks "1 2 4 64"] [--modes "gloo mpi in-process"]
#                    [--process_limit P] [--devices "cpu cuda"] [--sorters "..."]
#
# --sorters defaults to every sorter that runs on the device (khsgd_train --list-sorters --device);
# a listed sorter without a GPU implementation is shown as "-" on cuda.
# Worker counts above --process_limit (default 8) run in-process only. --B is 16, or twice the
# workers where 16 does not split into even microbatches (64 workers: B 128). mpi and in-process
# run on the CPU only. Uses build/khsgd_train (or $KHSGD_TRAIN).
set -euo pipefail

epochs=6
ranks_list="1"
modes="gloo mpi in-process"
process_limit=8
devices="cpu"
sorters=""
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --ranks) ranks_list=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --process_limit) process_limit=$2; shift 2 ;;
    --devices) devices=$2; shift 2 ;;
    --sorters) sorters=$2; shift 2 ;;
    *) echo "$0: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
for mode in $modes; do
  case "$mode" in gloo | mpi | in-process) ;; *) echo "$0: unknown mode '$mode'" >&2; exit 2 ;; esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/khsgd_binary.sh"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Median of column $2 of metrics.csv $1 over epochs 2.. (all epochs when there is only one).
median_column() {
  awk -F, -v col="$2" 'NR > 1 { v[NR - 1] = $col } END {
      n = NR - 1; start = (n > 1) ? 2 : 1; m = 0
      for (i = start; i <= n; i++) w[++m] = v[i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (w[j] < w[i]) { t = w[i]; w[i] = w[j]; w[j] = t }
      printf "%.4f", (m % 2) ? w[(m + 1) / 2] : (w[m / 2] + w[m / 2 + 1]) / 2 }' "$1"
}

# Whether mode $1 runs $2 workers on device $3.
runs() {
  local mode=$1 ranks=$2 device=$3
  [ "$ranks" -eq 1 ] && return 0
  [ "$mode" = gloo ] || [ "$device" = cpu ] || return 1
  [ "$mode" = in-process ] || [ "$ranks" -le "$process_limit" ]
}

# One run of mode $1 with $2 workers; the rest are khsgd_train's flags. Prints its run folder.
run() {
  local mode=$1 ranks=$2 out=$3
  shift 3
  if [ "$ranks" -eq 1 ]; then
    "$KHSGD_TRAIN" "$@" > "$out.log" 2>&1
  elif [ "$mode" = in-process ]; then
    "$KHSGD_TRAIN" "$@" --node_cnt "$ranks" --in_process > "$out.log" 2>&1
  elif [ "$mode" = mpi ]; then
    "$here/launch.sh" --mpi "$ranks" -- "$@" --backend mpi > "$out.log" 2>&1
  else
    "$here/launch.sh" "$ranks" -- "$@" --backend gloo > "$out.log" 2>&1
  fi || { echo "$mode, $ranks worker(s) failed: $(tail -1 "$out.log")" >&2; return 1; }
  dirname "$(find "$out" -name metrics.csv | head -1)"
}

header=$(printf '%-6s %7s %4s %-8s' device workers B sorter)
for mode in $modes; do header+=$(printf ' %15s' "$mode s/ep"); done
echo "$header $(printf '%8s %9s %8s' "eval s" "peak MiB" "GPU MiB")"
for device in $devices; do
  on_device=" $("$KHSGD_TRAIN" --list-sorters --device "$device" | cut -f1 | tr '\n' ' ') "
  for ranks in $ranks_list; do
    batch=16
    if [ $((16 % ranks)) -ne 0 ] || [ $((16 / ranks % 2)) -ne 0 ]; then batch=$((2 * ranks)); fi
    for sorter in ${sorters:-$on_device}; do
      line=$(printf '%-6s %7s %4s %-8s' "$device" "$ranks" "$batch" "$sorter")
      first="" single=""
      for mode in $modes; do
        time=-
        if [[ "$on_device" == *" $sorter "* ]] && runs "$mode" "$ranks" "$device"; then
          if [ "$ranks" -eq 1 ] && [ -n "$single" ]; then
            time=$single
          else
            out=$scratch/$device-$mode-$ranks-$sorter
            if folder=$(run "$mode" "$ranks" "$out" --dataset synthetic --sorter "$sorter" --lr 5e-3 \
                          --epochs "$epochs" --B "$batch" --device "$device" --results_dir "$out" --quiet); then
              time=$(median_column "$folder/metrics.csv" 6)
              [ -n "$first" ] || first=$folder
              [ "$ranks" -eq 1 ] && single=$time
            else
              time=failed
            fi
          fi
        fi
        line+=$(printf ' %15s' "$time")
      done
      if [ -n "$first" ]; then
        peak=$(sed -n 's/.*"peak_rss_mib": \([0-9.]*\).*/\1/p' "$first/summary.json")
        gpu=$(sed -n 's/.*"peak_gpu_mib": \([0-9.]*\).*/\1/p' "$first/summary.json")
        line+=$(printf ' %8s %9.0f %8s' "$(median_column "$first/metrics.csv" 7)" "$peak" \
                  "$([ -n "$gpu" ] && printf '%.0f' "$gpu" || echo -)")
      fi
      echo "$line"
    done
  done
done
echo "machine: $(nproc) CPU cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if command -v nvidia-smi > /dev/null 2>&1; then
  echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
fi
