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
#                    [--baseline OTHER_KHSGD_TRAIN] [--rounds R]
#
# Then the ratios, each with both of its times, all measured in this run: several workers against
# one rank at the same B (a one-rank run at that B is added where it is not 16; ranks in processes
# of their own against one rank on as many cores as each of them has, in-process workers against one
# rank as it runs; where mpi ranks outnumber the cores, also an epoch of barriers alone against the
# same rank: scripts/barrier.c, as many processes meeting once a step, bound to the cores and
# waiting as those ranks are, and doing nothing else, which bounds them); then, in --rounds rounds
# (default 5), every one-rank CPU epoch against scripts/floor.c (the plain-C measuring stick,
# compiled here with cc -O2 -ffp-contract=off: D-RR against its "steps", the pair sorters against
# "steps + pair walk", evaluation against its "evaluation"), again for the rank held to one core
# (OMP_NUM_THREADS=1, as the floor runs), the fixed cost of a one-rank run (its wall time less its
# epochs and evaluations), the epoch of the fixed sorter (the same steps over the rows in their
# stored order, as the floor reads them) against the floor's "steps", and with --baseline the
# one-rank epochs, evaluations and fixed cost of another build (before / after). A round runs the
# floor and then each of those runs once, so that a ratio's two times are from the same minute; a
# line shows the round whose ratio is the median and, after it, the range over the rounds (this
# machine's speed moves from minute to minute, a ratio from one round by up to a half). Last the
# floor's runs, the build and the machine.
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
baseline=""
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --ranks) ranks_list=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --process_limit) process_limit=$2; shift 2 ;;
    --devices) devices=$2; shift 2 ;;
    --sorters) sorters=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "$0: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
case "$rounds" in
  '' | *[!0-9]* | 0) echo "$0: --rounds takes a whole number of rounds, 1 or more (got '$rounds')" >&2; exit 2 ;;
esac
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

# Sum of column $2 of metrics.csv $1 (every epoch).
sum_column() { awk -F, -v col="$2" 'NR > 1 { s += $col } END { printf "%.4f", s }' "$1"; }

now() { date +%s.%N; }

# One run of mode $1 with $2 workers; the rest are khsgd_train's flags. Prints its run folder.
# A one-rank run leaves its wall time in $3.wall; $TRAIN_BINARY, when set, runs instead.
run() {
  local mode=$1 ranks=$2 out=$3 start
  shift 3
  if [ "$ranks" -eq 1 ]; then
    start=$(now)
    "${TRAIN_BINARY:-$KHSGD_TRAIN}" "$@" > "$out.log" 2>&1 &&
      awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }' > "$out.wall"
  elif [ "$mode" = in-process ]; then
    "$KHSGD_TRAIN" "$@" --node_cnt "$ranks" --in_process > "$out.log" 2>&1
  elif [ "$mode" = mpi ]; then
    "$here/launch.sh" --mpi "$ranks" -- "$@" --backend mpi > "$out.log" 2>&1
  else
    "$here/launch.sh" "$ranks" -- "$@" --backend gloo > "$out.log" 2>&1
  fi || { echo "$mode, $ranks worker(s) failed: $(tail -1 "$out.log")" >&2; return 1; }
  dirname "$(find "$out" -name metrics.csv | head -1)"
}

# The measuring stick, compiled up front and run at the start of every round (below).
have_floor=""
cc=${CC:-cc}
if command -v "$cc" > /dev/null 2>&1 &&
   "$cc" -O2 -ffp-contract=off -o "$scratch/floor" "$here/floor.c" -lm 2> "$scratch/floor.log"; then
  have_floor=1
else
  echo "(no C compiler '$cc': no floor ratios)" >&2
fi
# The measuring stick for ranks that share cores: barriers of processes bound to the cores and
# waiting as the mpi ranks are, and nothing else (scripts/barrier.c).
have_barrier=""
if [ -n "$have_floor" ] && "$cc" -O2 -o "$scratch/barrier" "$here/barrier.c" 2> "$scratch/barrier.log"; then
  have_barrier=1
fi
# The time of line $1 in the floor's output $2.
floor_time() {
  awk -v name="$1" 'index($0, "floor " name " ") == 1 { printf "%.4f", $(NF - 1) }' "$2"
}
ratios=()  # lines printed after the table
# ratio NAME TIME_A LABEL_B TIME_B: one line "NAME A s / LABEL_B B s = A/B x".
ratio() {
  ratios+=("$(awk -v n="$1" -v a="$2" -v l="$3" -v b="$4" 'BEGIN {
      printf "%-44s %8.4f s / %-24s %8.4f s = %5.2fx", n, a, l, b, (b > 0 ? a / b : 0) }')")
}
# The floor line an epoch of sorter $1 is held to: the steps alone for the sorters that walk no
# gradients, the steps and the pair walk for the others.
floor_line() {
  case "$1" in
    D-RR | SO | fixed) echo "steps (D-RR)" ;;
    *) echo "steps + pair walk" ;;
  esac
}
# This round's ratio line $1: an epoch $3 of sorter $2 against the floor line floor_line gives, in
# the floor's output $4.
floor_epoch_ratio() {
  local line
  line=$(floor_line "$2")
  round_ratio "$1" "$3" "floor ${line% (D-RR)}" "$(floor_time "$line" "$4")"
}
# This round's ratios of a one-rank run of sorter $2 to the floor's output $5: the lines "$1,
# SORTER epoch" (epoch $3) and "$1, SORTER evaluation" (evaluation $4 against the floor's).
floor_ratios() {
  floor_epoch_ratio "$1, $2 epoch" "$2" "$3" "$5"
  round_ratio "$1, $2 evaluation" "$4" "floor evaluation" "$(floor_time evaluation "$5")"
}
# Lines measured in every round: their names in order, and "A B" a round in $scratch/round-N.
round_names=()
round_labels=()
# round_ratio NAME TIME_A LABEL_B TIME_B: this round's A and B of the ratio line NAME.
round_ratio() {
  local i
  [ -z "$3" ] || [ -n "$4" ] || return 0  # a ratio without its B (a floor line missing): left out
  for i in "${!round_names[@]}"; do [ "${round_names[$i]}" = "$1" ] && break; done
  if [ "${#round_names[@]}" -eq 0 ] || [ "${round_names[$i]}" != "$1" ]; then
    i=${#round_names[@]}
    round_names+=("$1")
    round_labels+=("$3")
  fi
  echo "$2 $4" >> "$scratch/round-$i"
}
# The line of round_names[$1]: the round whose A/B is the median (the lower of the two middle ones
# for an even count) with its A and B, then the range of A/B over the rounds. Where B is empty the
# line is a time alone ("fixed cost"): its median and range.
round_line() {
  awk -v n="${round_names[$1]}" -v l="${round_labels[$1]}" '
    { a[NR] = $1; b[NR] = $2; r[NR] = (NF < 2) ? $1 : ($2 > 0 ? $1 / $2 : 0); k[NR] = NR }
    END {
      for (i = 1; i <= NR; i++) for (j = i + 1; j <= NR; j++) if (r[k[j]] < r[k[i]]) { t = k[i]; k[i] = k[j]; k[j] = t }
      m = k[int((NR + 1) / 2)]
      range = sprintf("%d round%s: %.2f-%.2f", NR, (NR == 1 ? "" : "s"), r[k[1]], r[k[NR]])
      if (l == "") printf "%-44s %8.4f s (wall less epochs and evaluations; %s s)\n", n, a[m], range
      else printf "%-44s %8.4f s / %-24s %8.4f s = %5.2fx (%s)\n", n, a[m], l, b[m], r[m], range
    }' "$scratch/round-$1"
}
# "EPOCH EVAL FIXED" of the run in folder $1 whose wall time is in $2: median epoch, median
# evaluation, and wall time less every epoch and evaluation.
run_summary() {
  local m=$1/metrics.csv
  echo "$(median_column "$m" 6) $(median_column "$m" 7) $(awk -v w="$(cat "$2")" \
    -v t="$(sum_column "$m" 6)" -v e="$(sum_column "$m" 7)" 'BEGIN { printf "%.4f", w - t - e }')"
}
# The summary of a one-rank CPU run of sorter $1 at B $2 with binary $3, on at most $4 cores
# (OMP_NUM_THREADS; empty: as many as it takes), in round $5 (empty: the table's), run on first use
# (kept in a file: this is called in command substitutions).
single_run() {
  local cache folder
  cache=$scratch/single-$(echo "$1-$2-$3${4:+-cores-$4}${5:+-round-$5}" | tr -c 'A-Za-z0-9\n' _)
  if [ ! -s "$cache" ]; then
    folder=$(if [ -n "${4:-}" ]; then export OMP_NUM_THREADS=$4; fi
             TRAIN_BINARY=$3 run single 1 "$cache.run" --dataset synthetic --sorter "$1" \
               --lr 5e-3 --epochs "$epochs" --B "$2" --device cpu --results_dir "$cache.run" \
               --quiet) || return 1
    run_summary "$folder" "$cache.run.wall" > "$cache"
  fi
  cat "$cache"
}
# The cores a rank of $1 processes on this machine keeps busy (khsgd's rank_threads: the cores
# shared among the ranks, 1 to 8): several processes are held to one rank on as many.
cores=$(nproc)
cores_each() { local c=$((cores / $1)); [ "$c" -ge 1 ] || c=1; [ "$c" -le 8 ] || c=8; echo "$c"; }

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
              if [ "$ranks" -eq 1 ]; then
                single=$time
                if [ "$device" = cpu ]; then
                  run_summary "$folder" "$out.wall" > \
                    "$scratch/single-$(echo "$sorter-$batch-$KHSGD_TRAIN" | tr -c 'A-Za-z0-9\n' _)"
                fi
              elif [ "$mode" = in-process ] && [ "$device" = cpu ] &&
                   one=$(single_run "$sorter" "$batch" "$KHSGD_TRAIN"); then
                ratio "$mode, $ranks workers, B $batch, $sorter" "$time" "1 rank, B $batch" "${one%% *}"
              elif [ "$device" = cpu ] && each=$(cores_each "$ranks") &&
                   one=$(single_run "$sorter" "$batch" "$KHSGD_TRAIN" \
                           "$([ "$each" -lt "$(cores_each 1)" ] && echo "$each")"); then
                ratio "$mode, $ranks workers, B $batch, $sorter" "$time" \
                      "1 rank, B $batch, $each core(s)" "${one%% *}"
                # More ranks than cores: an epoch's barriers alone, one a step (the run's own
                # steps_per_epoch), in the same minute (what bounds these ranks: README, Speed).
                if [ "$mode" = mpi ] && [ "$ranks" -gt "$cores" ] && [ -n "$have_barrier" ] &&
                   steps=$(sed -n 's/.*"steps_per_epoch": *\([0-9]*\).*/\1/p' "$folder/config.json") &&
                   [ -n "$steps" ] && barriers=$("$scratch/barrier" "$ranks" "$steps"); then
                  ratio "  barriers alone, $ranks processes (barrier.c)" "$barriers" \
                        "1 rank, B $batch, $each core(s)" "${one%% *}"
                fi
              fi
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

# One-rank CPU epochs and evaluations against the floor, the fixed cost, and the baseline's, in
# rounds. A round runs the floor, then every sorter on its cores, this build's run and the
# baseline's one after the other, which of them first in turns from round to round, then the fixed
# sorter (where --sorters leaves it out), and last every sorter held to one core. (With the
# one-core runs before the others, or one build always first, a build measured against a copy of
# itself read up to 1.35x, and the same two builds read 1.2x one way round and 0.85x with their
# places swapped: on this kind of shared virtual machine the runs right after a change of load are
# slower or faster for reasons of the host's.)
if [[ " $devices " == *" cpu "* ]]; then
  one_rank_sorters=${sorters:-$("$KHSGD_TRAIN" --list-sorters --device cpu | cut -f1 | tr '\n' ' ')}
  for round in $(seq "$rounds"); do
    floor_out=""
    if [ -n "$have_floor" ]; then
      floor_out=$scratch/floor-$round.out
      "$scratch/floor" > "$floor_out"
    fi
    for sorter in $one_rank_sorters; do
      if [ -n "$baseline" ] && [ $((round % 2)) -eq 0 ]; then
        single_run "$sorter" 16 "$baseline" "" "$round" > /dev/null || true
      fi
      one=$(single_run "$sorter" 16 "$KHSGD_TRAIN" "" "$round") || continue
      read -r epoch eval fixed <<< "$one"
      [ -z "$floor_out" ] || floor_ratios "1 rank" "$sorter" "$epoch" "$eval" "$floor_out"
      round_ratio "1 rank, $sorter fixed cost" "$fixed" "" ""
      if [ -n "$baseline" ] && before=$(single_run "$sorter" 16 "$baseline" "" "$round"); then
        read -r b_epoch b_eval b_fixed <<< "$before"
        round_ratio "after / before: $sorter epoch" "$epoch" "before" "$b_epoch"
        round_ratio "after / before: $sorter evaluation" "$eval" "before" "$b_eval"
        round_ratio "after / before: $sorter fixed cost" "$fixed" "before" "$b_fixed"
      fi
    done
    # The same steps over the rows in their stored order (the fixed sorter), as the floor reads
    # them: the epoch's arithmetic without the cache misses of a random order, which the floor
    # does not pay (README, Speed: what bounds the rest). Where --sorters holds fixed, its own
    # line above ("1 rank, fixed epoch") is this one.
    if [ -n "$floor_out" ] && [[ " $one_rank_sorters " != *" fixed "* ]] &&
       in_order=$(single_run fixed 16 "$KHSGD_TRAIN" "" "$round"); then
      read -r o_epoch _ _ <<< "$in_order"
      floor_epoch_ratio "1 rank, rows in order (fixed) epoch" fixed "$o_epoch" "$floor_out"
    fi
    if [ -n "$floor_out" ] && [ "$(cores_each 1)" -gt 1 ]; then
      for sorter in $one_rank_sorters; do
        # The rank held to one core (OMP_NUM_THREADS=1), as the floor runs.
        one_core=$(single_run "$sorter" 16 "$KHSGD_TRAIN" 1 "$round") || continue
        read -r c_epoch c_eval _ <<< "$one_core"
        floor_ratios "1 rank on 1 core" "$sorter" "$c_epoch" "$c_eval" "$floor_out"
      done
    fi
  done
  for i in "${!round_names[@]}"; do ratios+=("$(round_line "$i")"); done
fi
if [ ${#ratios[@]} -gt 0 ]; then
  echo
  printf '%s\n' "${ratios[@]}"
fi
echo
if [ -n "$have_floor" ] && [[ " $devices " == *" cpu "* ]]; then
  floor_runs() { for r in $(seq "$rounds"); do floor_time "$1" "$scratch/floor-$r.out"; echo; done | paste -sd/; }
  echo "floor (scripts/floor.c, $cc -O2 -ffp-contract=off; one run a round, rounds 1-$rounds): steps (D-RR) $(floor_runs "steps (D-RR)") s; steps + pair walk $(floor_runs "steps + pair walk") s; evaluation $(floor_runs evaluation) s"
fi
echo "build: $("$KHSGD_TRAIN" --version) at $KHSGD_TRAIN$( [ -n "$baseline" ] && echo "; before: $("$baseline" --version) at $baseline")"
echo "machine: $(nproc) CPU cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
# A one-rank run keeps as many cores busy as rank_threads() gives it (README, Threads): the steps on
# one, the sorter's walk beside them and the evaluation's share of rows on the others.
echo "threads of a one-rank run: $(if [ -n "${OMP_NUM_THREADS:-}" ]; then echo "at most $OMP_NUM_THREADS (OMP_NUM_THREADS)"; else echo "one a core this process may use, at most 8"; fi); OMP_NUM_THREADS=1 runs it on one core"
if command -v nvidia-smi > /dev/null 2>&1; then
  echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
fi
