#!/usr/bin/env bash
# switches.sh: context switches and fdatasyncs per request of kvd and of
# redis-server under the same durable load (issue 9), counted by `perf
# stat` on each server for 3 s in the middle of a 7 s kvbench run, with
# each server thread's voluntary and involuntary switches from
# /proc/PID/task/*/status over the same window.
#
# It installs nothing: it needs redis-server, perf (with the syscalls
# tracepoints) and Go. Both servers get a fresh data directory; kvd is
# built from this checkout unless KVD_BIN names a binary. The tracepoints
# slow both servers, so the ops/s printed here are not throughput figures
# (bench/compare.sh is); "per request" divides by the run's ops/s times
# the 3 s window.
#
# Usage: bench/switches.sh [-m always|everysec|no] [-x RATIO] [-r ROUNDS]
#   -m MODE   fsync mode of both servers (default always)
#   -x RATIO  kvbench GET:PUT ratio (default 1:9, the write-heavy mix)
#   -r N      rounds, each kvd then redis (default 1)
# Run it under the bench lock: flock /tmp/kvd-bench.lock bash bench/switches.sh
set -euo pipefail
MODE=always
RATIO=1:9
ROUNDS=1
while getopts "m:x:r:h" opt; do
  case $opt in
    m) MODE=$OPTARG ;;
    x) RATIO=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup switches

# threads FILE: each thread's id, voluntary and involuntary switches.
threads() { for t in /proc/"$PID"/task/*; do
  echo "$(basename "$t") $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' "$t/status")"
done >"$1"; }

one() {
  local kind=$1 proto addr
  rm -rf "$WORK/data"; mkdir "$WORK/data"
  if [ "$kind" = kvd ]; then
    "$KVD" -addr 127.0.0.1:4011 -dir "$WORK/data" -fsync "$MODE" >"$WORK/server.log" 2>&1 &
    PID=$!; proto=kvd; addr=127.0.0.1:4011
  else
    redis-server --port 6391 --bind 127.0.0.1 --save '' --appendonly yes --appendfsync "$MODE" --dir "$WORK/data" >"$WORK/server.log" 2>&1 &
    PID=$!; proto=resp; addr=127.0.0.1:6391
  fi
  sleep 0.5
  "$WORK/kvbench" -proto "$proto" -addr "$addr" -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null
  "$WORK/kvbench" -proto "$proto" -addr "$addr" -c 50 -P 1 -ratio "$RATIO" -vsize 64 -keys 100000 -d 7s -json -q >"$WORK/run.json" &
  local bp=$!
  sleep 2
  threads "$WORK/t0"
  perf stat -x, -e context-switches,syscalls:sys_enter_fdatasync -p "$PID" -o "$WORK/stat" -- sleep 3
  threads "$WORK/t1"
  wait "$bp"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  local ops cs fsyncs
  ops=$(grep -o '"ops_per_sec":[0-9.]*' "$WORK/run.json" | cut -d: -f2)
  cs=$(awk -F, '$3 == "context-switches" {print $1}' "$WORK/stat")
  fsyncs=$(awk -F, '$3 ~ /fdatasync/ {print $1}' "$WORK/stat")
  awk -v k="$kind" -v ops="$ops" -v cs="$cs" -v fs="$fsyncs" 'BEGIN {
    r = ops * 3
    printf "%-5s %8.0f ops/s  context switches %.3f per request  requests per fdatasync %.1f\n", k, ops, cs / r, (fs > 0 ? r / fs : 0) }'
  join "$WORK/t0" "$WORK/t1" | awk '($4 - $2) + ($5 - $3) > 0 {
    printf "      thread %s: %d voluntary, %d involuntary switches\n", $1, $4 - $2, $5 - $3 }'
}

echo "mode $MODE, GET:PUT $RATIO, $ROUNDS round(s); kvd: $KVD"
for r in $(seq "$ROUNDS"); do
  one kvd
  one redis
done
