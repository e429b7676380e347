#!/usr/bin/env bash
# tail.sh: where the time of the slow requests goes at 50 connections,
# pipeline 1 (issue 12), for kvd and then redis-server, in memory,
# unpinned: kvbench's latencies; the server's own latency histogram (kvd
# only: kvd_request_duration_seconds from -metrics-addr, scraped before
# and after the run, from the loop round that read a request to the send
# of its answer); the CPU each process used over the run (/proc/PID/stat);
# and `perf sched latency` over 2 s of it (how long each process's threads
# waited in the run queue).
#
# It installs nothing: it needs redis-server, perf, curl and Go. kvd is
# built from this checkout unless KVD_BIN names a binary.
#
# Usage: bench/tail.sh [-d 6s]  (at least 5s: the CPU and scheduler
# measurements are taken 0.2 to 3.5 s into the run)
# Run it under the bench lock: flock /tmp/kvd-bench.lock bash bench/tail.sh
set -euo pipefail
DUR=6s
while getopts "d:h" opt; do
  case $opt in
    d) DUR=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup tail
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hist() { curl -s 127.0.0.1:9141/metrics | grep '^kvd_request_duration_seconds_bucket' >"$1"; }

one() {
  local kind=$1 proto addr
  if [ "$kind" = kvd ]; then
    "$KVD" -addr 127.0.0.1:4013 -log-level warn -metrics-addr 127.0.0.1:9141 >"$WORK/server.log" 2>&1 &
    PID=$!; proto=kvd; addr=127.0.0.1:4013
  else
    redis-server --port 6394 --bind 127.0.0.1 --save '' --appendonly no >"$WORK/server.log" 2>&1 &
    PID=$!; proto=resp; addr=127.0.0.1:6394
  fi
  sleep 0.5
  "$WORK/kvbench" -proto "$proto" -addr "$addr" -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null
  [ "$kind" = kvd ] && hist "$WORK/h0"
  local s0 s1 b0 b1 t0 t1
  s0=$(cpu "$PID"); t0=$(date +%s.%N)
  "$WORK/kvbench" -proto "$proto" -addr "$addr" -c 50 -P 1 -ratio 9:1 -vsize 64 -keys 100000 -d "$DUR" -json -q >"$WORK/run.json" &
  local bp=$!
  sleep 0.2; b0=$(cpu "$bp")
  sleep 1
  perf sched record -o "$WORK/sched.data" -- sleep 2 >/dev/null 2>&1
  b1=$(cpu "$bp"); s1=$(cpu "$PID"); t1=$(date +%s.%N)
  wait "$bp"
  [ "$kind" = kvd ] && hist "$WORK/h1"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  echo "== $kind"
  grep -o '"ops_per_sec":[0-9.]*\|"latency_us":{[^}]*}' "$WORK/run.json" | tr '\n' ' '; echo
  awk -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v t="$TICK" -v a="$t0" -v z="$t1" 'BEGIN {
    printf "CPU over %.1f s: server %.2f cores, kvbench %.2f cores\n", z - a, s / t / (z - a), b / t / (z - a - 0.2) }'
  if [ "$kind" = kvd ]; then
    echo "server-side latency, cumulative share of the run's requests by upper bound (s):"
    paste "$WORK/h0" "$WORK/h1" | awk '{ split($1, a, "le=\""); le = a[2]; sub(/"}/, "", le); print le, $4 - $2 }' |
      awk '{ le[NR] = $1; c[NR] = $2 } END { for (i = 1; i <= NR; i++) if (c[i] > 0 && c[i] < c[NR] || i == NR) printf "  le %s: %.4f\n", le[i], c[i] / c[NR] }'
  fi
  echo "run-queue waits (perf sched latency, 2 s):"
  perf sched latency -i "$WORK/sched.data" --sort max 2>/dev/null | grep -E "kvd|redis|kvbench" | sed 's/^/  /'
}

one kvd
one redis
