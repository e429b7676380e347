#!/usr/bin/env bash
# syscalls.sh: system calls, context switches and CPU time per request of
# kvd (event loops with io_uring batches, and with plain read/write) and
# of redis-server, in memory, under the same kvbench load (issue 12).
#
# Each row is one `perf stat` of the server process over a kvbench run of
# a fixed number of requests, after a prefill of 100,000 keys of 64 bytes
# and a 1 s warm-up: all system calls (raw_syscalls:sys_enter, kernel
# tracepoints, no strace slow-down), read, write, io_uring_enter,
# epoll_wait and epoll_pwait (the loops' zero-timeout polls), futex,
# nanosleep (the loops' naps, and the Go runtime's sysmon),
# context switches and CPU migrations of all its threads, and task-clock
# (the server's CPU time). Counts are what a shared machine does not
# distort; the CPU column is inflated by the tracepoints, comparable
# between rows of one run.
#
# It installs nothing: it needs redis-server, perf and Go. kvd is built
# from this checkout unless KVD_BIN names a binary.
#
# Usage: bench/syscalls.sh [-s SCENARIOS] [-p]
#   -s LIST   comma-separated: c4-1:1, c50-P1, c200, c50-P16 (default all)
#   -p        pin: servers on CPU 0 (kvd then has GOMAXPROCS 1), kvbench
#             on CPU 1, as bench/compare.sh -p
# Run it under the bench lock: flock /tmp/kvd-bench.lock bash bench/syscalls.sh
set -euo pipefail
SCENARIOS=c4-1:1,c50-P1,c200,c50-P16
PIN=0
while getopts "s:ph" opt; do
  case $opt in
    s) SCENARIOS=$OPTARG ;;
    p) PIN=1 ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_setup syscalls
SRV=()
CLI=()
if [ "$PIN" = 1 ]; then SRV=(taskset -c 0); CLI=(taskset -c 1); fi
EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,context-switches,cpu-migrations,task-clock

# args SCENARIO: kvbench arguments and request count of a scenario.
args() {
  case $1 in
    c4-1:1) echo "-c 4 -P 1 -ratio 1:1 -n 200000" ;;
    c50-P1) echo "-c 50 -P 1 -ratio 9:1 -n 300000" ;;
    c200) echo "-c 200 -P 1 -ratio 9:1 -n 300000" ;;
    c50-P16) echo "-c 50 -P 16 -ratio 9:1 -n 2000000" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

# one SERVER SCENARIO: prints one row.
one() {
  local kind=$1 sc=$2 proto addr n
  if [ "$kind" = redis ]; then
    "${SRV[@]}" redis-server --port 6392 --bind 127.0.0.1 --save '' --appendonly no >"$WORK/server.log" 2>&1 &
    PID=$!; proto=resp; addr=127.0.0.1:6392
  else
    local flags=""
    [ "$kind" = kvd-plain ] && flags="-io-uring=false"
    # shellcheck disable=SC2086
    "${SRV[@]}" "$KVD" -addr 127.0.0.1:4012 -log-level warn $flags >"$WORK/server.log" 2>&1 &
    PID=$!; proto=kvd; addr=127.0.0.1:4012
  fi
  sleep 0.5
  "$WORK/kvbench" -proto "$proto" -addr "$addr" -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null
  # shellcheck disable=SC2046
  "${CLI[@]}" "$WORK/kvbench" -proto "$proto" -addr "$addr" $(args "$sc" | sed 's/-n [0-9]*//') -vsize 64 -keys 100000 -d 1s -q >/dev/null
  n=$(args "$sc" | sed 's/.*-n //')
  # shellcheck disable=SC2046
  perf stat -x, -e "$EVENTS" -p "$PID" -o "$WORK/stat" -- "${CLI[@]}" "$WORK/kvbench" -proto "$proto" -addr "$addr" $(args "$sc") -vsize 64 -keys 100000 -q >/dev/null
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  awk -F, -v k="$kind" -v sc="$sc" -v n="$n" '
    { v[$3] = $1 }
    END {
      printf "| %s | %s | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", sc, k,
        v["raw_syscalls:sys_enter"] / n, v["syscalls:sys_enter_read"] / n, v["syscalls:sys_enter_write"] / n,
        v["syscalls:sys_enter_io_uring_enter"] / n, v["syscalls:sys_enter_epoll_wait"] / n,
        v["syscalls:sys_enter_epoll_pwait"] / n, v["syscalls:sys_enter_futex"] / n,
        v["syscalls:sys_enter_nanosleep"] / n, v["context-switches"] / n, v["cpu-migrations"] / n, v["task-clock"] * 1000 / n }' "$WORK/stat"
}

echo "pin=$PIN; kvd: $KVD; per request:"
echo "| scenario | server | syscalls | read | write | io_uring_enter | epoll_wait | epoll_pwait | futex | nanosleep | context switches | CPU migrations | server CPU µs |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
IFS=, read -ra LIST <<<"$SCENARIOS"
for sc in "${LIST[@]}"; do
  for kind in kvd kvd-plain redis; do one "$kind" "$sc"; done
done
