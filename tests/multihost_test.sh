#!/usr/bin/env bash
# 2 and 4 ranks as separate hosts: each rank in its own network namespace, the namespaces joined by
# a bridge, MASTER_ADDR the first host's address (not loopback). The metrics must equal those of
# the same ranks on one host. Then the same over the mpi backend: mpirun -H in the first
# namespace starts the others through an rsh agent that enters their namespaces (in place of ssh),
# and the ranks talk over Open MPI's TCP transport. Needs root and iproute2; exits 77 (ctest:
# skipped) without them; the mpi half is skipped without mpirun or a build with the mpi backend.
#
#   tests/multihost_test.sh KHSGD_TRAIN LAUNCH_SH DATA_DIR
set -u
train=$1
launch=$2
data=$3
[ "$(id -u)" -eq 0 ] || { echo "skipped: network namespaces need root"; exit 77; }
command -v ip > /dev/null || { echo "skipped: no ip (iproute2)"; exit 77; }

tag=k$$                             # unique names, so parallel runs do not collide
subnet=10.$((100 + $$ % 100)).$(($$ / 100 % 250)).
bridge=${tag}br
tmp=$(mktemp -d)
cleanup() {
  for i in 0 1 2 3; do
    ip netns del "${tag}h$i" 2> /dev/null
    ip link del "${tag}v$i" 2> /dev/null
  done
  ip link del "$bridge" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! ip link add "$bridge" type bridge 2> /dev/null; then
  echo "skipped: cannot create a bridge here"
  exit 77
fi
ip link set "$bridge" up
for i in 0 1 2 3; do
  ns=${tag}h$i
  ip netns add "$ns" || { echo "skipped: cannot create network namespaces"; exit 77; }
  ip link add "${tag}v$i" type veth peer name eth0 netns "$ns"
  ip link set "${tag}v$i" master "$bridge" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${subnet}$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
done
master=${subnet}1
sleep 1  # the bridge forwards once its ports have come up

# The run under $2 must have the metrics and every rank's orders of the run under $1 ($3 ranks;
# $4 names the second run in messages); prints the second run's folder.
same_run() {
  local one two
  one=$(dirname "$(find "$1" -name metrics.csv)")
  two=$(dirname "$(find "$2" -name metrics.csv)")
  diff <(cut -d, -f1-5 "$one/metrics.csv") <(cut -d, -f1-5 "$two/metrics.csv") > /dev/null || {
    echo "FAIL: $4 gave other metrics than $3 ranks on one host" >&2; return 1; }
  for ((r = 0; r < $3; r++)); do
    cmp -s "$one/orders-rank$r.csv" "$two/orders-rank$r.csv" || {
      echo "FAIL: rank $r's orders differ between one host and $4" >&2; return 1; }
  done
  echo "$two"
}

args=(--sorter CD-GraB --seed 1 --lr 5e-3 --epochs 2 --data_dir "$data" --quiet --save_orders --device cpu)
status=0
for n in 2 4; do
  # The same ranks on one host, through the launcher.
  KHSGD_TRAIN=$train "$launch" "$n" -- "${args[@]}" --results_dir "$tmp/local$n" > "$tmp/local$n.log" 2>&1 || {
    echo "FAIL: $n ranks on one host:"; cat "$tmp/local$n.log"; exit 1; }
  # One rank per host.
  pids=()
  for ((r = 0; r < n; r++)); do
    ip netns exec "${tag}h$r" env RANK=$r WORLD_SIZE=$n LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 \
      MASTER_ADDR="$master" MASTER_PORT=29611 "$train" "${args[@]}" --timeout 60 \
      --results_dir "$tmp/hosts$n" > "$tmp/hosts$n-rank$r.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  if [ $status -ne 0 ]; then
    echo "FAIL: $n ranks on $n hosts:"; tail -n 3 "$tmp"/hosts$n-rank*.log; exit 1
  fi
  host_run=$(same_run "$tmp/local$n" "$tmp/hosts$n" "$n" "$n hosts") || exit 1
  grep -q "\"master\": \"$master:29611\"" "$host_run/config.json" || {
    echo "FAIL: config.json does not record the master $master"; exit 1; }
  echo "ok: $n ranks on $n hosts (master $master) = $n ranks on one host"
done

if ! command -v mpirun > /dev/null || ! "$train" --version | grep -q 'backends:.*mpi'; then
  echo "skipped the mpi half: no mpirun or no mpi backend in this build"
  exit 0
fi
# Open MPI's rsh launcher runs "AGENT HOST COMMAND..." for every other host, as it would run ssh.
# Each host also gets its own host name (a UTS namespace): with one shared name, Open MPI 4.1's
# daemons on a CI machine could not route to each other at 4 hosts ("ORTE does not know how to
# route a message to the specified daemon"), where real hosts have names of their own.
{ echo '#!/bin/sh'; echo "tag=$tag"; cat << 'AGENT'; } > "$tmp/netns-agent"
host=$1
shift
ns=${tag}h$((${host##*.} - 1))
exec ip netns exec "$ns" unshare --uts /bin/sh -c 'hostname "$1" && shift && exec /bin/sh -c "$*"' agent "$ns" "$@"
AGENT
chmod +x "$tmp/netns-agent"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for n in 2 4; do
  hosts=${subnet}1
  for ((r = 1; r < n; r++)); do hosts+=,${subnet}$((r + 1)); done
  # Yielding while waiting is what TCP between hosts on a shared 2-core machine wants (README).
  ip netns exec "${tag}h0" unshare --uts /bin/sh -c 'hostname "$1" && shift && exec "$@"' sh "${tag}h0" \
    mpirun -np "$n" -H "$hosts" --mca plm_rsh_agent "$tmp/netns-agent" \
    --mca btl tcp,self --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
    --mca routed direct --mca plm_rsh_no_tree_spawn 1 \
    --mca mpi_yield_when_idle 1 "$train" "${args[@]}" --timeout 60 --results_dir "$tmp/mpi$n" \
    > "$tmp/mpi$n.log" 2>&1 || { echo "FAIL: $n ranks on $n hosts over mpi:"; head -n 40 "$tmp/mpi$n.log"; exit 1; }
  mpi_run=$(same_run "$tmp/local$n" "$tmp/mpi$n" "$n" "$n hosts over mpi") || exit 1
  grep -q '"backend": "mpi"' "$mpi_run/config.json" || { echo "FAIL: the mpirun job did not use mpi"; exit 1; }
  echo "ok: $n ranks on $n hosts over mpi (mpirun -H $hosts) = $n ranks over gloo on one host"
done
exit 0
