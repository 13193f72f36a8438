#!/usr/bin/env bash
# Seconds per training epoch of every sorter on the full-size synthetic set (195 285 x 20), as a
# table: median over the epochs after the first (which pays for page faults and warm-up),
# evaluation separately, rank 0's peak resident memory and, on the GPU, the peak of khsgd's own
# device buffers.
#
#   scripts/bench.sh [--epochs N] [--ranks "1 2 4"] [--devices "cpu cuda"] [--sorters "..."]
#
# Uses build/khsgd_train (or $KHSGD_TRAIN); several ranks go through scripts/launch.sh.
set -euo pipefail

epochs=6
ranks_list="1"
devices="cpu"
sorters="D-RR CD-GraB SBW KH-SGD"
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --ranks) ranks_list=$2; shift 2 ;;
    --devices) devices=$2; shift 2 ;;
    --sorters) sorters=$2; shift 2 ;;
    *) echo "$0: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KHSGD_TRAIN=${KHSGD_TRAIN:-$here/../build/khsgd_train}
[ -x "$KHSGD_TRAIN" ] || { echo "$0: build first: $KHSGD_TRAIN is missing" >&2; exit 2; }
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

printf '%-6s %-6s %-8s %12s %10s %10s %10s\n' device ranks sorter "train s/ep" "eval s" "peak MiB" "GPU MiB"
for device in $devices; do
  for ranks in $ranks_list; do
    for sorter in $sorters; do
      out=$scratch/$device-$ranks-$sorter
      args=(--dataset synthetic --sorter "$sorter" --lr 5e-3 --epochs "$epochs" --device "$device"
            --backend gloo --results_dir "$out")
      if [ "$ranks" -eq 1 ]; then
        "$KHSGD_TRAIN" "${args[@]}" > "$out.log" 2>&1 || { echo "$device/$sorter failed:"; tail -3 "$out.log"; continue; }
      else
        "$here/launch.sh" "$ranks" -- "${args[@]}" > "$out.log" 2>&1 || { echo "$device/$ranks/$sorter failed:"; tail -3 "$out.log"; continue; }
      fi
      run=$(dirname "$(find "$out" -name metrics.csv | head -1)")
      peak=$(sed -n 's/.*"peak_rss_mib": \([0-9.]*\).*/\1/p' "$run/summary.json")
      gpu=$(sed -n 's/.*"peak_gpu_mib": \([0-9.]*\).*/\1/p' "$run/summary.json")
      printf '%-6s %-6s %-8s %12s %10s %10.0f %10s\n' "$device" "$ranks" "$sorter" \
        "$(median_column "$run/metrics.csv" 6)" "$(median_column "$run/metrics.csv" 7)" "$peak" \
        "$([ -n "$gpu" ] && printf '%.0f' "$gpu" || echo -)"
    done
  done
done
echo "machine: $(nproc) CPU cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if command -v nvidia-smi > /dev/null 2>&1; then
  echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
fi
