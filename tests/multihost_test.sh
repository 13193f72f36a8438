#!/usr/bin/env bash
# 2 and 4 ranks as separate hosts: each rank in its own network namespace, the namespaces joined by
# a bridge, MASTER_ADDR the first host's address (not loopback). The metrics must equal those of
# the same ranks on one host. Needs root and iproute2; exits 77 (ctest: skipped) without them.
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
  local_run=$(dirname "$(find "$tmp/local$n" -name metrics.csv)")
  host_run=$(dirname "$(find "$tmp/hosts$n" -name metrics.csv)")
  if ! diff <(cut -d, -f1-5 "$local_run/metrics.csv") <(cut -d, -f1-5 "$host_run/metrics.csv"); then
    echo "FAIL: $n hosts gave other metrics than $n ranks on one host"; exit 1
  fi
  for ((r = 0; r < n; r++)); do
    cmp -s "$local_run/orders-rank$r.csv" "$host_run/orders-rank$r.csv" || {
      echo "FAIL: rank $r's orders differ between one host and $n hosts"; exit 1; }
  done
  grep -q "\"master\": \"$master:29611\"" "$host_run/config.json" || {
    echo "FAIL: config.json does not record the master $master"; exit 1; }
  echo "ok: $n ranks on $n hosts (master $master) = $n ranks on one host"
done
exit 0
