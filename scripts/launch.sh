#!/usr/bin/env bash
# Starts NPROC local ranks of khsgd_train, the way torchrun --nproc_per_node=NPROC would:
#
#   scripts/launch.sh [--mpi] NPROC -- [khsgd_train flags...]
#
# Each rank gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (MASTER_PORT: as set,
# else a free port). The binary is $KHSGD_TRAIN, else build/khsgd_train beside this script.
# When one rank fails, the others are stopped; the exit status is the first failure's.
#
# --mpi: Open MPI's mpirun starts the ranks instead (--backend auto then picks mpi). More ranks
# than cores are allowed (--oversubscribe; Open MPI then yields the core while a rank waits), and
# as root the variables Open MPI asks for are set. Nothing else changes.
set -u

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
train=${KHSGD_TRAIN:-$here/../build/khsgd_train}
if [ ! -x "$train" ]; then
  echo "$0: $train is not an executable; build first (cmake --build build) or set KHSGD_TRAIN" >&2
  exit 2
fi

if [ "$use_mpi" -eq 1 ]; then
  command -v mpirun > /dev/null || { echo "$0: --mpi needs Open MPI's mpirun (scripts/install-deps.sh installs it)" >&2; exit 2; }
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  exec mpirun --oversubscribe -np "$nproc_arg" "$train" "$@"
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
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
}
trap 'stop_all; exit 130' INT TERM

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
  [ -n "$done_pid" ] || break
  still=()
  for pid in "${live[@]}"; do [ "$pid" = "$done_pid" ] || still+=("$pid"); done
  live=("${still[@]+"${still[@]}"}")
  if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$code
    # Give the others a moment to report their own view of the failure, then stop them.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      alive=0
      for pid in "${live[@]+"${live[@]}"}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" -eq 0 ] && break
      sleep 0.5
    done
    stop_all
  fi
done
wait 2>/dev/null
exit "$status"
