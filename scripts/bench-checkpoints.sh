#!/usr/bin/env bash
# What checkpoints and the end-of-epoch agreement cost: wall seconds of whole runs (summary.json),
# median over repeats, interleaved so that a busy machine slows every variant alike.
#
#   scripts/bench-checkpoints.sh [--repeats 5] [--epochs 50]
#
# One rank, the full-size synthetic set: a checkpoint after every epoch (--checkpoint_every 1,
# the old default), the default schedule (every 60 s), and none. Two ranks on a 32-row set (two
# steps per epoch, so that the per-epoch collective shows): this build against
# $KHSGD_TRAIN_BEFORE (a build without the agreement), when given. The binary is $KHSGD_TRAIN or
# build/khsgd_train.
set -euo pipefail
repeats=5
epochs=50
while [ $# -gt 0 ]; do
  case "$1" in
    --repeats) repeats=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    *) echo "bench-checkpoints: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/khsgd_binary.sh"
train=$KHSGD_TRAIN
before=${KHSGD_TRAIN_BEFORE:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# wall SECONDS of one run: BINARY RANKS ARGS...
wall() {
  local binary=$1 ranks=$2
  shift 2
  rm -rf "$tmp/results"
  if [ "$ranks" -eq 1 ]; then
    "$binary" "$@" --results_dir "$tmp/results" --quiet > /dev/null
  else
    KHSGD_TRAIN=$binary "$here/launch.sh" "$ranks" -- "$@" --results_dir "$tmp/results" --quiet > /dev/null
  fi
  sed -n 's/.*"wall_seconds": \([0-9.]*\).*/\1/p' "$(find "$tmp/results" -name summary.json)"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

one=(--dataset synthetic --sorter KH-SGD --lr 5e-3 --seed 1 --epochs "$epochs")
declare -A runs=(
  ["1 rank, checkpoint every epoch"]="$train 1 ${one[*]} --checkpoint_every 1"
  ["1 rank, default (every 60 s)"]="$train 1 ${one[*]}"
  ["1 rank, no checkpoints"]="$train 1 ${one[*]} --checkpoint_every 0 --checkpoint_seconds 0"
)
small_epochs=$((epochs * 20))
small=(--dataset synthetic --synthetic_rows 32 --sorter CD-GraB --lr 5e-3 --seed 1 --epochs "$small_epochs")
runs["2 ranks, $small_epochs epochs of 2 steps"]="$train 2 ${small[*]} --checkpoint_every 0 --checkpoint_seconds 0"
[ -n "$before" ] && runs["2 ranks, $small_epochs epochs of 2 steps, before"]="$before 2 ${small[*]} --checkpoint_every 0"

declare -A times
for ((r = 0; r < repeats; r++)); do
  for name in "${!runs[@]}"; do
    # shellcheck disable=SC2086
    times[$name]+="$(wall ${runs[$name]}) "
  done
done
printf '%-48s %10s   %s\n' "variant" "median s" "runs (s)"
for name in "${!runs[@]}"; do
  printf '%-48s %10.3f   %s\n' "$name" "$(tr ' ' '\n' <<< "${times[$name]}" | grep . | median)" "${times[$name]}"
done | sort
