#!/usr/bin/env bash
# kvd-ab.sh: two kvd builds (or settings) against each other, durable or
# in memory, interleaved run by run, with kvbench against kvd alone (no
# Redis). This machine's speed drifts within the hour, so two builds are
# compared run by run, not from runs an hour apart.
#
# Each side gets a kvd on its own loopback port (and, when durable, a
# fresh data directory), prefilled with 100,000 keys of 64 bytes; then
# every round runs each mix on A, then on B, and prints throughput, p99,
# the server's CPU time per operation (user + system from /proc/PID/stat),
# kvbench's own (bash's time), and how much of the machine's CPU time was idle during the run (from
# /proc/stat: what neither the server nor kvbench used). Servers are
# stopped on every exit path.
#
# Usage: bench/kvd-ab.sh [-r ROUNDS] [-d DUR] [-m MODE] [-c CONNS] [-x MIXES] A_BIN B_BIN
#   -r N      rounds (default 3)
#   -d DUR    duration of each kvbench run (default 4s)
#   -m MODE   kvd -fsync mode: always, everysec or no, or none for in
#             memory (no -dir) (default everysec)
#   -c N      connections, each with one request in flight (default 50)
#   -x LIST   mixes, comma-separated: w (GET:PUT 1:9), r (9:1), e (1:1)
#             (default w,r)
# Environment: A_FLAGS, B_FLAGS: extra kvd flags of each side (e.g.
# '-event-loops 0'); A_ENV, B_ENV: environment of each side (e.g.
# 'GOMAXPROCS=3'). A_BIN and B_BIN may be the same binary.
#
# Example (a build of an older commit against this tree's):
#   git worktree add --detach /tmp/old f12ff21 && (cd /tmp/old && go build -o /tmp/kvd-old ./cmd/kvd)
#   go build -o /tmp/kvd-new ./cmd/kvd
#   flock /tmp/kvd-bench.lock bash bench/kvd-ab.sh -m everysec /tmp/kvd-old /tmp/kvd-new
set -euo pipefail

ROUNDS=3
DUR=4s
MODE=everysec
MIXES=w,r
CONNS=50
while getopts "r:d:m:c:x:h" opt; do
  case $opt in
    r) ROUNDS=$OPTARG ;;
    d) DUR=$OPTARG ;;
    m) MODE=$OPTARG ;;
    c) CONNS=$OPTARG ;;
    x) MIXES=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
BIN_A=$1
BIN_B=$2

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PID_A=""
PID_B=""
cleanup() {
  for p in $PID_A $PID_B; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
(cd "$ROOT" && go build -o "$WORK/kvbench" ./cmd/kvbench)

start() { # start SIDE BIN PORT: starts kvd, prints its PID
  local side=$1 bin=$2 port=$3 env flags durable=()
  if [ "$side" = A ]; then env=${A_ENV:-}; flags=${A_FLAGS:-}; else env=${B_ENV:-}; flags=${B_FLAGS:-}; fi
  if [ "$MODE" != none ]; then
    mkdir -p "$WORK/data-$side"
    durable=(-dir "$WORK/data-$side" -fsync "$MODE")
  fi
  # shellcheck disable=SC2086 # env and flags are lists
  env $env "$bin" -addr "127.0.0.1:$port" -log-level warn "${durable[@]}" $flags \
    >"$WORK/kvd-$side.log" 2>&1 &
  echo $!
}
PID_A=$(start A "$BIN_A" 4061)
PID_B=$(start B "$BIN_B" 4062)
for port in 4061 4062; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$WORK/kvbench" -proto kvd -addr "127.0.0.1:$port" -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# idle prints the machine's idle and total CPU time so far (/proc/stat, in ticks).
idle() { awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
echo "mode $MODE, $CONNS connections, $ROUNDS rounds of $DUR; A: $BIN_A ${A_ENV:-} ${A_FLAGS:-}; B: $BIN_B ${B_ENV:-} ${B_FLAGS:-}"
for mix in ${MIXES//,/ }; do
  case $mix in
    w) ratio=1:9 ;;
    r) ratio=9:1 ;;
    e) ratio=1:1 ;;
    *) echo "unknown mix $mix" >&2; exit 2 ;;
  esac
  for round in $(seq "$ROUNDS"); do
    for side in A B; do
      if [ $side = A ]; then port=4061; pid=$PID_A; else port=4062; pid=$PID_B; fi
      t0=$(cpu "$pid")
      i0=$(idle)
      # bash's time keyword: kvbench's own CPU time (user + system), in seconds.
      out=$({ TIMEFORMAT='cpu %U %S'; time "$WORK/kvbench" -proto kvd -addr "127.0.0.1:$port" -c "$CONNS" -P 1 -ratio "$ratio" -vsize 64 -keys 100000 -d "$DUR" -json -q; } 2>&1)
      i1=$(idle)
      t1=$(cpu "$pid")
      ops=$(echo "$out" | grep -o '"ops":[0-9]*' | cut -d: -f2)
      secs=$(echo "$out" | grep -o '"seconds":[0-9.]*' | cut -d: -f2)
      p99=$(echo "$out" | grep -o '"p99":[0-9.]*' | cut -d: -f2)
      ccpu=$(echo "$out" | awk '$1 == "cpu" {print $2 + $3}')
      awk -v m="$mix" -v r="$round" -v s="$side" -v n="$ops" -v sec="$secs" -v p="$p99" -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v i="$i0 $i1" -v c="$ccpu" \
        'BEGIN {split(i, x, " "); printf "%s round %d %s: %.0f ops/s, p99 %.0f us, CPU %.2f us/op (kvbench %.2f), machine idle %.1f%%\n", m, r, s, n/sec, p, t*1e6/hz/n, c*1e6/n, 100*(x[3]-x[1])/(x[4]-x[2])}'
    done
  done
done
