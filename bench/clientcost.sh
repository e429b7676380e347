#!/usr/bin/env bash
# clientcost.sh: what the load generator costs next to the server, in the
# closed loop on this machine (issue 12).
#
# On a machine where the clients share the cores with the server (the
# unpinned runs of bench/compare.sh), every request costs the client's CPU
# as well as the server's, and the throughput ratio of two servers is
# bounded by the sum of the two. This script measures both, per request,
# for three pairs, round by round, unpinned:
#
#   kvd   driven by kvbench
#   redis driven by kvbench (-proto resp)
#   redis driven by redis-benchmark, Redis's own C load generator (an
#         event loop, no goroutines), to show what a load generator
#         other than ours costs
#
# Load: 50 connections, pipeline 1, GETs only (redis-benchmark -t get, of
# 64-byte values, over 100,000 keys, prefilled), -n requests per run.
# Each line: throughput, the server's CPU per request (user + system,
# /proc/PID/stat), the client's (bash's time), and the share of the
# machine's CPU time that was idle (/proc/stat). Then, per round, the
# bound that these figures put on kvd's throughput over Redis's: with
# both runs keeping the machine as busy as they did, throughput is busy
# CPU over CPU per request, so the ratio is
#   (1 - idle_kvd) / (1 - idle_redis) * (cpu_redis + client_redis) / (cpu_kvd + client_kvd)
# which the script prints next to the measured ratio (they agree when
# the accounting is complete), then the ratio at equal idle (the second
# factor alone), and that again with kvd's server CPU taken as its kernel
# share alone (what kvd would cost if its own code took no time at all).
# The kernel share is the server's system time over its user + system
# time (/proc/PID/stat) in the same run.
#
# With -p the servers run on CPU 0 and the clients on CPU 1 (as
# bench/compare.sh -p); each line then also has the idle share of each of
# the two CPUs, which says which side bounds the throughput (the bound
# above is for the unpinned runs: pinned, each side has its own core).
#
# It installs redis-server (with redis-benchmark) if it is missing. kvd is
# built from this checkout unless KVD_BIN names a binary.
#
# Usage: bench/clientcost.sh [-r ROUNDS] [-n REQUESTS] [-p]
#   -r N      rounds (default 4)
#   -n N      requests per run (default 400000)
#   -p        pin: servers on CPU 0, clients on CPU 1
# Run it under the bench lock: flock /tmp/kvd-bench.lock bash bench/clientcost.sh
set -euo pipefail
ROUNDS=4
REQS=400000
PIN=0
while getopts "r:n:ph" opt; do
  case $opt in
    r) ROUNDS=$OPTARG ;;
    n) REQS=$OPTARG ;;
    p) PIN=1 ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
if ! command -v redis-benchmark >/dev/null; then
  apt-get update && apt-get install -y redis-server
fi
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup clientcost
SRV=()
CLI=()
if [ "$PIN" = 1 ]; then SRV=(taskset -c 0); CLI=(taskset -c 1); fi
KVD_PORT=4071
REDIS_PORT=6371
REDIS_PID=""
trap 'bench_cleanup; [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null; true' EXIT
"${SRV[@]}" "$KVD" -addr "127.0.0.1:$KVD_PORT" -log-level warn >"$WORK/kvd.log" 2>&1 &
PID=$!
"${SRV[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for port in $KVD_PORT $REDIS_PORT; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
"$WORK/kvbench" -proto kvd -addr "127.0.0.1:$KVD_PORT" -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null
"$WORK/kvbench" -proto resp -addr "127.0.0.1:$REDIS_PORT" -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null

# cpu PID: the process's user and system time so far, in ticks.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
# idle: idle and total CPU time so far (ticks) of the machine, CPU 0 and
# CPU 1, on one line.
idle() { awk '/^cpu[01]? / {printf "%d %d ", $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9} END {print ""}' /proc/stat; }
HZ=$(getconf CLK_TCK)

# measure NAME SERVER_PID CMD...: runs CMD (the client) and prints, on one
# line: NAME ops/s server_us client_us idle_share kernel_share (the
# server's system time over its user + system time) cpu0_idle cpu1_idle.
measure() {
  local name=$1 pid=$2 t0 t1 i0 i1 out
  shift 2
  t0=$(cpu "$pid")
  i0=$(idle)
  out=$({ TIMEFORMAT='cpu %R %U %S'; time "${CLI[@]}" "$@" >/dev/null 2>&1; } 2>&1)
  i1=$(idle)
  t1=$(cpu "$pid")
  echo "$out" | awk -v name="$name" -v n="$REQS" -v t="$t0 $t1" -v hz="$HZ" -v i="$i0 $i1" \
    '$1 == "cpu" {split(i, x, " "); split(t, c, " "); u = c[3]-c[1]; s = c[4]-c[2]
      printf "%s %.0f %.2f %.2f %.3f %.3f %.3f %.3f\n", name, n/$2, (u+s)*1e6/hz/n, ($3+$4)*1e6/n,
        (x[7]-x[1])/(x[8]-x[2]), s/(u+s), (x[9]-x[3])/(x[10]-x[4]), (x[11]-x[5])/(x[12]-x[6])}'
}

echo "50 connections, pipeline 1, GET, $REQS requests per run; per request: server CPU, client CPU (µs); machine idle"
for round in $(seq "$ROUNDS"); do
  k=$(measure kvd "$PID" "$WORK/kvbench" -proto kvd -addr "127.0.0.1:$KVD_PORT" -c 50 -P 1 -ratio 1:0 -keys 100000 -vsize 64 -n "$REQS" -q)
  r=$(measure redis "$REDIS_PID" "$WORK/kvbench" -proto resp -addr "127.0.0.1:$REDIS_PORT" -c 50 -P 1 -ratio 1:0 -keys 100000 -vsize 64 -n "$REQS" -q)
  b=$(measure redis-benchmark "$REDIS_PID" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t get -c 50 -P 1 -r 100000 -d 64 -n "$REQS" -q)
  printf '%s\n%s\n%s\n' "$k" "$r" "$b" | awk -v round="$round" -v pin="$PIN" '
    {ops[NR]=$2; srv[NR]=$3; cli[NR]=$4; idl[NR]=$5; ks[NR]=$6
     printf "round %d %-15s %7.0f ops/s  server %5.2f (kernel %2.0f%%)  client %5.2f  idle %4.1f%% (cpu0 %4.1f%%, cpu1 %4.1f%%)\n", round, $1, $2, $3, 100*$6, $4, 100*$5, 100*$7, 100*$8}
    END {
      cost = (srv[2]+cli[2]) / (srv[1]+cli[1])
      kcost = (srv[2]+cli[2]) / (ks[1]*srv[1]+cli[1])
      busy = (1-idl[1]) / (1-idl[2])
      if (pin) printf "round %d kvd/redis (kvbench): measured %.2fx\n", round, ops[1]/ops[2]
      else printf "round %d kvd/redis (kvbench): measured %.2fx; from CPU and idle %.2fx; at equal idle %.2fx, and %.2fx with kvd costing only its kernel share\n", round, ops[1]/ops[2], busy*cost, cost, kcost
    }'
done
