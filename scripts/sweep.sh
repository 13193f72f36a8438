#!/usr/bin/env bash
# Runs sorters x seeds (x worker counts) with the paper's settings, several runs at once, and
# prints a summary table at the end.
#
#   scripts/sweep.sh [--sorters "D-RR KH-SGD ..."] [--seeds "1 2 3 4 5"] [--ranks "1 2 4"]
#                    [--in_process | --backend gloo|mpi] [--jobs J] [--overwrite_changed]
#                    [--epochs 50] [--lr 5e-3] [--B 16] [--dataset hmda|synthetic]
#                    [--results_dir results] [--exp LR-HMDA] [-- more khsgd_train flags]
#
# --sorters defaults to the paper's four (D-RR CD-GraB SBW KH-SGD: the sorters khsgd_train
# --list-sorters marks "paper"); --sorters all runs every sorter it knows, the baselines too. --ranks takes one worker count or a list (a worker-count study). Several workers run as ranks
# started by scripts/launch.sh (gloo; --backend mpi: by mpirun), or with --in_process as N workers
# inside one process. --jobs J runs J runs at once; by default as many as keep one process per
# core (cores / processes per run, at least one run).
#
# Runs whose folder holds a finished run with the same flags are skipped, so an interrupted sweep
# continues where it stopped; an unfinished one resumes from its checkpoint (or starts over when
# it has none). Before it starts anything, the sweep checks every folder it would reuse against
# its own flags (khsgd_train --print_run_state compares config.json): a folder that holds a run
# with other flags (another --momentum, --data_dir, ...) stops the sweep with exit 2, naming the
# flag, unless --overwrite_changed asks to run those again from scratch. A run that another
# process is running (a second sweep on the same folder) is left to it. Each run's output is appended to RESULTS_DIR/EXP-EPOCHS/logs/RUN.log. The binary is
# $KHSGD_TRAIN or build/khsgd_train.
set -uo pipefail

sorters=""
seeds="1 2 3 4 5"
ranks_list=1
epochs=50
lr=5e-3
batch=16
dataset=hmda
results_dir=results
exp=LR-HMDA
backend=""
in_process=0
jobs=""
overwrite_changed=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sorters) sorters=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --ranks) ranks_list=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --in_process) in_process=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    --overwrite_changed) overwrite_changed=1; shift ;;
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
positive() { case "$1" in '' | *[!0-9]* | 0) return 1 ;; esac; }
[ -n "${ranks_list// /}" ] || { echo "sweep: --ranks is empty" >&2; exit 2; }
for ranks in $ranks_list; do
  positive "$ranks" || { echo "sweep: --ranks must list positive integers, got '$ranks'" >&2; exit 2; }
done
case "$backend" in
  '' | gloo | mpi) ;;
  *) echo "sweep: --backend must be gloo or mpi, got '$backend'" >&2; exit 2 ;;
esac
[ "$in_process" -eq 1 ] && [ -n "$backend" ] && {
  echo "sweep: --in_process runs every worker in one process; it takes no --backend" >&2; exit 2; }
# How many runs may run at once: --jobs J, else runs are started while their processes fit the cores.
cores=$(nproc)
if [ -n "$jobs" ]; then
  positive "$jobs" || { echo "sweep: --jobs must be a positive integer, got '$jobs'" >&2; exit 2; }
  at_once="$jobs at a time"
else
  at_once="as many at a time as keep one process per core ($cores cores)"
fi
processes_of() { [ "$in_process" -eq 1 ] && echo 1 || echo "$1"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/khsgd_binary.sh"
if [ -z "$sorters" ] || [ "$sorters" = all ]; then
  listed=$("$KHSGD_TRAIN" --list-sorters) || { echo "sweep: $KHSGD_TRAIN --list-sorters failed" >&2; exit 2; }
  [ -z "$sorters" ] && listed=$(awk -F '\t' '$3 == "paper"' <<< "$listed")
  sorters=$(cut -f1 <<< "$listed" | tr '\n' ' ')
fi
# The summary needs numpy: $PYTHON, else the first python3 that has it (Debian's python3-numpy).
python=""
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
  if "$candidate" -c "import numpy" 2>/dev/null; then python=$candidate; break; fi
done
[ -n "$python" ] || { echo "sweep: no python3 with numpy (install python3-numpy)" >&2; exit 2; }
# Folder names come from khsgd_train itself (--print_run_dir), which also checks the flags.
probe=$("$KHSGD_TRAIN" --results_dir "$results_dir" --exp "$exp" --epochs "$epochs" --lr "$lr" \
        --B "$batch" --dataset "$dataset" --print_run_dir 2>&1) || { echo "sweep: $probe" >&2; exit 2; }
exp_dir=$(dirname "$probe")
logs=$exp_dir/logs
mkdir -p "$logs" || exit 2

# One run, in the background: its line is printed when it ends; the exit status is the run's.
run_one() {
  local label=$1 note=$2 ranks=$3 log=$4 dir=$5
  shift 5
  local start status seconds
  start=$(date +%s.%N)
  if [ "$ranks" -eq 1 ] || [ "$in_process" -eq 1 ]; then
    "$KHSGD_TRAIN" "$@" >> "$log" 2>&1
  elif [ "$backend" = mpi ]; then
    "$here/launch.sh" --mpi "$ranks" -- "$@" >> "$log" 2>&1
  else
    "$here/launch.sh" "$ranks" -- "$@" >> "$log" 2>&1
  fi
  status=$?
  seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  if [ $status -eq 0 ]; then
    # A run whose loss stopped being finite still finishes (exit 0); say so here, not only in the
    # table (summary.json: "diverged", "first_nonfinite_epoch").
    local diverged
    diverged=$(sed -n 's/.*"first_nonfinite_epoch": \([0-9][0-9]*\).*/\1/p' "$dir/summary.json" 2>/dev/null)
    echo "$label: done in $seconds s$note${diverged:+, DIVERGED from epoch $diverged (see $log)}"
  elif [ $status -eq 2 ] && tail -2 "$log" | grep -q "is in use by another run\|already holds a finished run"; then
    # A second sweep on the same folder: the run belongs to the process that holds it.
    echo "$label: running elsewhere, left to it:"
    tail -1 "$log" | sed 's/^/    /'
    return 0
  else
    echo "$label: FAILED (status $status), see $log:"
    tail -2 "$log" | sed 's/^/    /'
  fi
  return $status
}

# Every run's flags, label and what its folder holds, decided before any run starts.
labels=(); run_args=(); run_ranks=(); run_how=(); changed=0; refused=0
for ranks in $ranks_list; do
  workers=$([ "$ranks" -gt 1 ] && echo ", $ranks workers" || true)
  for sorter in $sorters; do
    for seed in $seeds; do
      label="$sorter seed $seed$workers"
      mode=()
      [ "$in_process" -eq 1 ] && mode=(--node_cnt "$ranks" --in_process)
      [ -n "$backend" ] && mode=(--backend "$backend")
      args=(--sorter "$sorter" --seed "$seed" --epochs "$epochs" --lr "$lr" --B "$batch"
            --dataset "$dataset" --results_dir "$results_dir" --exp "$exp" "${mode[@]}" "${extra[@]}")
      # The run folder as khsgd_train names it (--node_cnt: the ranks it will be launched with),
      # and what it holds: new, finished, resumable or unfinished; exit 2 for other flags.
      # The state on stdout, a refusal on stderr (kept apart: a notice on stderr is no state).
      if ! state=$("$KHSGD_TRAIN" "${args[@]}" --node_cnt "$ranks" --print_run_state 2> "$logs/.state"); then
        why=$(tail -1 "$logs/.state")
        if [ "$overwrite_changed" -eq 1 ] && [[ $why == *"holds a run with other flags"* ]]; then
          state=changed; changed=$((changed + 1))
        else
          echo "$label: ${why#khsgd_train: error: }" >&2; refused=$((refused + 1)); continue
        fi
      fi
      labels+=("$label"); run_args+=("$(printf '%q ' "${args[@]}")"); run_ranks+=("$ranks")
      run_how+=("$state")
    done
  done
done
rm -f "$logs/.state"
if [ "$refused" -gt 0 ]; then
  echo "sweep: $refused run(s) cannot go ahead as asked (above); nothing was started. Rerun with" \
       "--overwrite_changed to run those with other flags again, or choose another --exp" >&2
  exit 2
fi

total=${#labels[@]}
# Runs side by side keep one core busy each: no evaluation threads (nor LibTorch's) beyond it,
# unless OMP_NUM_THREADS says otherwise.
[ "$jobs" = 1 ] || export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "sweep: $total run(s), $at_once$([ "$changed" -gt 0 ] && echo "; $changed with other flags run again (--overwrite_changed)")"
failed=0
running=0       # runs started and not yet reaped
busy=0          # their processes
declare -A processes_of_pid
# Waits for one run to end and counts its failure.
reap() {
  local pid=""
  wait -n -p pid
  [ $? -eq 0 ] || failed=$((failed + 1))
  running=$((running - 1))
  busy=$((busy - ${processes_of_pid[$pid]:-1}))
  unset "processes_of_pid[$pid]"
}
# Whether a run of $1 processes must wait for another to end first.
must_wait() {
  [ "$running" -gt 0 ] || return 1
  if [ -n "$jobs" ]; then [ "$running" -ge "$jobs" ]; else [ $((busy + $1)) -gt "$cores" ]; fi
}
for index in "${!labels[@]}"; do
  label="[$((index + 1))/$total] ${labels[$index]}"
  eval "args=(${run_args[$index]})"
  ranks=${run_ranks[$index]}
  case "${run_how[$index]}" in
    finished) echo "$label: finished earlier, skipped"; continue ;;
    resumable) resume=(--resume) ;;                   # continue from its checkpoint
    unfinished | changed) resume=(--overwrite) ;;     # start it over
    *) resume=() ;;
  esac
  run=$("$KHSGD_TRAIN" "${args[@]}" --node_cnt "$ranks" --print_run_dir)
  name=$(basename "$run")
  args+=("${resume[@]}")
  procs=$(processes_of "$ranks")
  while must_wait "$procs"; do reap; done
  run_one "$label" "${resume:+ (${resume[0]#--})}" "$ranks" "$logs/$name.log" "$run" "${args[@]}" &
  processes_of_pid[$!]=$procs
  running=$((running + 1))
  busy=$((busy + procs))
done
while [ "$running" -gt 0 ]; do reap; done

"$python" "$here/../plots/summarize.py" "$exp_dir" || true
[ $failed -eq 0 ] || { echo "sweep: $failed run(s) failed" >&2; exit 1; }
