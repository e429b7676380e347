#!/usr/bin/env bash
# client.sh: the Go client (package client) against kvbench on the same kvd.
#
# Builds kvd, kvbench and the client package's test binary, starts kvd on
# 127.0.0.1:4001 (stopped by PID on every exit path), prefills 100,000 keys
# of 64 bytes with kvbench, then for each round runs, one after the other:
#   kvbench -c 50 -P 1 -ratio 9:1    (50 connections, one request in flight each)
#   kvbench -c 50 -P 16 -ratio 9:1   (50 connections, batches of 16)
#   BenchmarkClientMix9010           (50 goroutines through the client:
#                                     pipelined = one Client, 2 shared connections;
#                                     conn-per-goroutine = 50 Clients of 1 connection)
# Port 4001 is compare.sh's: run it under the same lock,
#   flock /tmp/kvd-bench.lock bash bench/client.sh
#
# Usage: bench/client.sh [-d 5s] [-r 3] [-k KVD_FLAGS]
set -euo pipefail
DUR=5s
ROUNDS=3
KVD_ARGS=""
while getopts "d:r:k:h" opt; do
  case $opt in
    d) DUR=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    k) KVD_ARGS=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d /tmp/kvd-client-bench.XXXXXX)
KVD_PID=""
cleanup() {
  if [ -n "$KVD_PID" ]; then kill -TERM "$KVD_PID" 2>/dev/null || true; wait "$KVD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
go build -o "$WORK/kvd" ./cmd/kvd
go build -o "$WORK/kvbench" ./cmd/kvbench
go test -c -o "$WORK/client.test" ./client
ADDR=127.0.0.1:4001
# shellcheck disable=SC2086
"$WORK/kvd" -addr $ADDR -log-level warn $KVD_ARGS &
KVD_PID=$!
for _ in $(seq 50); do "$WORK/kvbench" -addr $ADDR -c 1 -d 1ms -q >/dev/null 2>&1 && break; sleep 0.1; done
"$WORK/kvbench" -addr $ADDR -prefill -load-only -keys 100000 -vsize 64 -c 16 -q
echo "kvd $(git rev-parse --short HEAD) $KVD_ARGS; $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  for p in 1 16; do
    printf 'kvbench c50-P%s: ' "$p"
    "$WORK/kvbench" -addr $ADDR -c 50 -P "$p" -ratio 9:1 -vsize 64 -keys 100000 -d "$DUR" -json -q |
      grep -o '"ops_per_sec":[0-9.]*\|"p99":[0-9.]*' | head -2 | tr '\n' ' '
    echo
  done
  KVD_BENCH_ADDR=$ADDR "$WORK/client.test" -test.run '^$' -test.bench 'ClientMix9010' -test.benchtime "$DUR" -test.benchmem | grep '^Benchmark'
done
