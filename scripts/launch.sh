#!/usr/bin/env bash
# Starts NPROC local ranks of khsgd_train, the way torchrun --nproc_per_node=NPROC would:
#
#   scripts/launch.sh [--mpi] NPROC -- [khsgd_train flags...]
#
# Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (MASTER_PORT: as set,
# else a free port). The binary is $KHSGD_TRAIN, else build/khsgd_train beside this script.
# When one rank fails, the others are stopped; the exit status is the first failure's.
# SIGINT (Ctrl-C) and SIGTERM are passed on to every rank, which stop cleanly at the end of the
# epoch (a second Ctrl-C: at once); the script waits for them and exits with their status (130, 143).
#
# --mpi: Open MPI's mpirun starts the ranks instead (--backend auto then picks mpi). More ranks
# than cores are allowed (--oversubscribe; Open MPI then yields the core while a rank waits), and
# bound one core each, in turn (--map-by core --bind-to core:overload-allowed,if-supported; mpirun
# leaves them unbound): a rank waiting for the others then knows which of them share its core
# (README, Waiting). As root the variables Open MPI asks for are set. Nothing else changes.
set -u
# Job control: each rank in its own process group, so that a Ctrl-C on the terminal reaches this
# script alone and every rank gets it exactly once, from here (and ranks do not start with SIGINT
# ignored, as background commands of a script otherwise do).
set -m

usage() {
  echo "usage: $0 [--mpi] NPROC -- [khsgd_train flags...]" >&2
  exit 2
}
use_mpi=0
if [ "${1:-}" = "--mpi" ]; then
  use_mpi=1
  shift
fi
[ $# -ge 2 ] || usage
nproc_arg=$1
shift
[ "$1" = "--" ] || usage
shift
case "$nproc_arg" in
  '' | *[!0-9]* | 0) echo "$0: NPROC must be a positive integer, got '$nproc_arg'" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/khsgd_binary.sh"
train=$KHSGD_TRAIN

if [ "$use_mpi" -eq 1 ]; then
  command -v mpirun > /dev/null || { echo "$0: --mpi needs Open MPI's mpirun (scripts/install-deps.sh installs it)" >&2; exit 2; }
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  # More ranks than the cores this script may use (nproc, less its OMP_* reading): bind them one
  # core each, in turn; where binding is not supported, they run unbound as before. mpirun places
  # them on the machine's cores, not only those a taskset left to this script.
  bind=()
  if [ "$nproc_arg" -gt "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" ]; then
    bind=(--map-by core --bind-to core:overload-allowed,if-supported)
  fi
  exec mpirun --oversubscribe ${bind[@]+"${bind[@]}"} -np "$nproc_arg" "$train" "$@"
fi

free_port() {
  python3 - <<'EOF' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
export MASTER_PORT=${MASTER_PORT:-$(free_port)}
export WORLD_SIZE=$nproc_arg

pids=()
signal_all() {
  for pid in "${pids[@]}"; do kill -"$1" "$pid" 2>/dev/null; done
}
trap 'signal_all INT' INT
trap 'signal_all TERM' TERM

for ((rank = 0; rank < nproc_arg; rank++)); do
  RANK=$rank LOCAL_RANK=$rank LOCAL_WORLD_SIZE=$nproc_arg "$train" "$@" &
  pids+=($!)
done

# Wait for each rank as it ends; the first failure stops the rest.
status=0
live=("${pids[@]}")
while [ ${#live[@]} -gt 0 ]; do
  done_pid=""
  wait -n -p done_pid "${live[@]}"
  code=$?
  # A signal passed on to the ranks interrupts the wait: keep waiting for them.
  # (wait -p leaves the variable unset then).
  [ -z "${done_pid:-}" ] && [ "$code" -gt 128 ] && continue
  [ -n "${done_pid:-}" ] || break
  still=()
  for pid in "${live[@]}"; do [ "$pid" = "$done_pid" ] || still+=("$pid"); done
  live=("${still[@]+"${still[@]}"}")
  [ "$code" -ne 0 ] && [ "$status" -eq 0 ] && status=$code
  # 130 and 143: a clean stop, which every rank makes after the same epoch; wait for the others.
  if [ "$code" -ne 0 ] && [ "$code" -ne 130 ] && [ "$code" -ne 143 ]; then
    # Give the others a moment to report their own view of the failure, then end them: they are
    # stuck in a collective with the lost rank, so a clean stop would never come.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      alive=0
      for pid in "${live[@]+"${live[@]}"}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" -eq 0 ] && break
      sleep 0.5
    done
    signal_all KILL
  fi
done
wait 2>/dev/null
exit "$status"
