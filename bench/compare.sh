#!/usr/bin/env bash
# compare.sh: kvd against redis-server on this machine, side by side, with
# kvbench driving both with the same settings (issue 5).
#
# It installs redis-server if it is missing, builds kvd and kvbench, starts
# both servers on loopback ports, prefills 100,000 keys of 64 bytes in
# each, then runs every scenario in alternation (kvd, redis, kvd, redis,
# ...) for several rounds and prints the medians and ratios (throughput,
# p99, p99.9, p50, and each server's CPU time per operation from
# /proc/PID/stat, a per-core cost that a shared machine disturbs less than
# throughput), then every run. Then, on fresh
# servers, it measures RSS after loading 1,000,000 keys of 64-byte values
# and RSS with 10,000 idle connections. Both servers are stopped by PID on
# every exit path.
#
# Usage: bench/compare.sh [-d 5s] [-r 3] [-s c50-P1,c50-P16] [-o DIR] [-k ARGS] [-D MODE] [-M] [-T] [-p] [-h]
#   -d DUR    duration of each kvbench run (default 5s)
#   -r N      rounds per scenario; each round runs kvd then redis (default 3)
#   -s LIST   only these scenarios (comma-separated names, see below)
#   -o DIR    keep raw results (JSON lines, logs) in DIR (default: a temp dir)
#   -M        skip the memory (RSS) measurements
#   -T        skip the throughput scenarios
#   -p        pin: servers on CPU 0, kvbench on CPU 1 (default: unpinned)
#   -k ARGS   extra kvd flags, e.g. -k '-event-loops 1' (default: none)
#   -D MODE   durable mode: kvd -dir DIR -fsync MODE against redis-server
#             --appendonly yes --appendfsync MODE, each with its own data
#             directory under the work dir (MODE: always, everysec or no);
#             default: both in memory only (redis: --save '' --appendonly no)
#   -L RATE   offered load: kvbench -rate RATE (operations per second in
#             all, on a schedule, latency from each scheduled send) for
#             both servers, to compare latencies at the same throughput
#             (default: closed loop, each as fast as it answers)
#   -R DIR    only print the throughput table again from DIR/results.jsonl
#             of an earlier run (no servers, no builds)
# Environment: KVD_BIN, a kvd binary to measure instead of building this
# tree's (for variants and older builds).
#
# Scenarios (GET:PUT 9:1, 64-byte values, 100k keys unless noted):
#   c50-P1    50 connections, pipeline 1
#   c50-P16   50 connections, pipeline 16
#   c4-1:1    4 connections, GET:PUT 1:1
#   c50-1:9   50 connections, pipeline 1, GET:PUT 1:9 (write-heavy)
#   c200      200 connections, pipeline 1
#   c50-txn   50 connections, every operation a 2-key read-modify-write
#             transaction (kvd: START/GET/PUT/COMMIT; redis: WATCH/GET/MULTI/SET/EXEC)
set -euo pipefail

DUR=5s
ROUNDS=3
ONLY=""
OUT=""
DO_MEM=1
DO_TPUT=1
PIN=0
KVD_PORT=4001
REDIS_PORT=6390
REPORT_ONLY=""
IDLE_CONNS=10000
MEM_KEYS=1000000

KVD_ARGS=""
DURABLE=""
RATE=""
while getopts "d:r:s:o:R:k:D:L:MTph" opt; do
  case $opt in
    d) DUR=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    s) ONLY=$OPTARG ;;
    o) OUT=$OPTARG ;;
    M) DO_MEM=0 ;;
    T) DO_TPUT=0 ;;
    p) PIN=1 ;;
    k) KVD_ARGS=$OPTARG ;;
    D) DURABLE=$OPTARG ;;
    L) RATE=$OPTARG ;;
    R) REPORT_ONLY=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [-d 5s] [-r 3] [-s names] [-o dir] [-M] [-T] [-p]" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d /tmp/kvd-compare.XXXXXX)
[ -n "$OUT" ] || OUT="$WORK/out"
mkdir -p "$OUT"

KVD_PID=""
REDIS_PID=""
IDLE_PID=""

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$IDLE_PID"; IDLE_PID=""
  stop_pid "$KVD_PID"; KVD_PID=""
  stop_pid "$REDIS_PID"; REDIS_PID=""
  rm -f "$WORK/kvd" "$WORK/kvbench"
  rm -rf "$WORK/kvd-data" "$WORK/redis-data"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "compare: $*" >&2; }

# ---- scenarios and the report ---------------------------------------------------

SCENARIOS=(
  "c50-P1|-c 50 -P 1 -ratio 9:1 -vsize 64 -keys 100000"
  "c50-P16|-c 50 -P 16 -ratio 9:1 -vsize 64 -keys 100000"
  "c4-1:1|-c 4 -P 1 -ratio 1:1 -vsize 64 -keys 100000"
  "c50-1:9|-c 50 -P 1 -ratio 1:9 -vsize 64 -keys 100000"
  "c200|-c 200 -P 1 -ratio 9:1 -vsize 64 -keys 100000"
  "c50-txn|-c 50 -P 1 -txn 1 -txn-keys 2 -vsize 64 -keys 100000"
)

selected() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

json_field() { # json_field NAME < JSON lines: per line, the first numeric field NAME
  awk -v pat="\"$1\":[-0-9.e+]+" 'match($0, pat) {v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:/, "", v); print v}'
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

print_table() { # print_table RESULTS.jsonl
  local results=$1
  echo
  echo "Throughput and latency: medians of $(grep -c "\"server\":\"kvd\"" "$results" | awk -v n="$(grep -o "\"scenario\":\"[^\"]*\",\"server\":\"kvd\",\"round\":1," "$results" | wc -l)" '{print (n>0)?$1/n:0}') runs per server and scenario (kvd and redis alternating; $results)"
  printf '%-9s | %11s %11s %6s | %9s %9s %6s | %9s %9s | %8s %8s | %7s %7s | %s\n' \
    scenario "kvd ops/s" "redis ops/s" "ratio" "kvd p99" "redis p99" "ratio" "kvd p99.9" "rds p99.9" "kvd p50" "rds p50" "kvd us" "rds us" "errors kvd/redis"
  printf -- '----------+--------------------------------+----------------------------+---------------------+-------------------+-----------------+-----------------\n'
  for sc in "${SCENARIOS[@]}"; do
    name=${sc%%|*}
    selected "$name" || continue
    grep -q "\"scenario\":\"$name\"" "$results" || continue # not in this run
    declare -A m=()
    for server in kvd redis; do
      runs=$(grep "\"scenario\":\"$name\",\"server\":\"$server\"" "$results" | sed 's/.*"run"://')
      m[$server.ops]=$(echo "$runs" | json_field ops_per_sec | median)
      # Transaction-only scenarios have no single-request latencies:
      # report the whole transaction's.
      lat='"latency_us"'
      [[ $name == *txn* ]] && lat='"txn_latency_us"'
      m[$server.p99]=$(echo "$runs" | sed "s/.*$lat://" | json_field p99 | median)
      m[$server.p50]=$(echo "$runs" | sed "s/.*$lat://" | json_field p50 | median)
      m[$server.p999]=$(echo "$runs" | sed "s/.*$lat://" | json_field p999 | median)
      # Server CPU time (user + system) per operation, in microseconds.
      m[$server.cpu]=$(grep "\"scenario\":\"$name\",\"server\":\"$server\"" "$results" | json_field cpu_us_per_op | median)
      m[$server.err]=$(echo "$runs" | json_field errors | awk '{s+=$1} END {print s+0}')
      m[$server.conn]=$(echo "$runs" | json_field conn_errors | awk '{s+=$1} END {print s+0}')
    done
    printf '%-9s | %11.0f %11.0f %5.2fx | %7.0fus %7.0fus %5.2fx | %7.0fus %7.0fus | %6.0fus %6.0fus | %7.2f %7.2f | %s/%s' \
      "$name" "${m[kvd.ops]}" "${m[redis.ops]}" "$(awk -v a="${m[kvd.ops]}" -v b="${m[redis.ops]}" 'BEGIN {print (b>0)?a/b:0}')" \
      "${m[kvd.p99]}" "${m[redis.p99]}" "$(awk -v a="${m[kvd.p99]}" -v b="${m[redis.p99]}" 'BEGIN {print (b>0)?a/b:0}')" \
      "${m[kvd.p999]}" "${m[redis.p999]}" "${m[kvd.p50]}" "${m[redis.p50]}" "${m[kvd.cpu]:-nan}" "${m[redis.cpu]:-nan}" "${m[kvd.err]}" "${m[redis.err]}"
    if [ "${m[kvd.conn]}" != 0 ] || [ "${m[redis.conn]}" != 0 ]; then
      printf '  (broken connections %s/%s)' "${m[kvd.conn]}" "${m[redis.conn]}"
    fi
    echo
    unset m
  done
  echo "ratio columns are kvd/redis: throughput > 1 and p99 < 1 favour kvd; c50-txn latencies are per transaction."
  echo "kvd us / rds us: the server's CPU time (user + system, from /proc/PID/stat) per operation."
  echo
  echo "Every run, in order (ops/s / p99 us / p99.9 us):"
  for sc in "${SCENARIOS[@]}"; do
    name=${sc%%|*}
    selected "$name" || continue
    grep -q "\"scenario\":\"$name\"" "$results" || continue
    for server in kvd redis; do
      lat='"latency_us"'
      [[ $name == *txn* ]] && lat='"txn_latency_us"'
      printf '%-9s %-5s |' "$name" "$server"
      grep "\"scenario\":\"$name\",\"server\":\"$server\"" "$results" | sed 's/.*"run"://' | while read -r run; do
        printf ' %.0f / %.0f / %.0f |' "$(echo "$run" | json_field ops_per_sec)" \
          "$(echo "$run" | sed "s/.*$lat://" | json_field p99)" "$(echo "$run" | sed "s/.*$lat://" | json_field p999)"
      done
      echo
    done
  done
  if grep -q '"scenario":"c50-txn"' "$results"; then
    for server in kvd redis; do
      runs=$(grep "\"scenario\":\"c50-txn\",\"server\":\"$server\"" "$results" | sed 's/.*"run"://')
      t=$(echo "$runs" | json_field txns | awk '{s+=$1} END {print s+0}')
      c=$(echo "$runs" | json_field conflicts | awk '{s+=$1} END {print s+0}')
      echo "c50-txn $server: $t transactions, $c conflicts"
    done
  fi
}

if [ -n "$REPORT_ONLY" ]; then
  print_table "$REPORT_ONLY/results.jsonl"
  exit 0
fi

# ---- setup ----------------------------------------------------------------

if ! command -v redis-server >/dev/null; then
  log "installing redis-server"
  apt-get update && apt-get install -y redis-server
fi

# Many idle connections need many descriptors in the servers and the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 200)) ]; then
  log "warning: ulimit -n is $(ulimit -n); the idle-connection test needs more than $IDLE_CONNS"
fi

log "building kvd and kvbench"
if [ -n "${KVD_BIN:-}" ]; then cp "$KVD_BIN" "$WORK/kvd"; else go build -o "$WORK/kvd" ./cmd/kvd; fi
go build -o "$WORK/kvbench" ./cmd/kvbench

SRV_PIN=()
CLI_PIN=()
if [ "$PIN" = 1 ]; then
  SRV_PIN=(taskset -c 0)
  CLI_PIN=(taskset -c 1)
fi

wait_port() { # wait_port PORT PID
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { log "server (pid $2) exited early"; return 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "port $1 did not open"; return 1
}

# Durable mode: each server start gets a fresh, empty data directory.
kvd_durable_args() {
  [ -n "$DURABLE" ] || return 0
  rm -rf "$WORK/kvd-data"; mkdir -p "$WORK/kvd-data"
  echo "-dir $WORK/kvd-data -fsync $DURABLE"
}
redis_persist_args() {
  if [ -z "$DURABLE" ]; then
    echo "--save '' --appendonly no"
    return
  fi
  rm -rf "$WORK/redis-data"; mkdir -p "$WORK/redis-data"
  echo "--save '' --appendonly yes --appendfsync $DURABLE --dir $WORK/redis-data"
}

start_kvd() {
  # shellcheck disable=SC2086,SC2046 # flag lists
  "${SRV_PIN[@]}" "$WORK/kvd" -addr "127.0.0.1:$KVD_PORT" -max-clients $((IDLE_CONNS + 100)) -log-level warn $KVD_ARGS $(kvd_durable_args) \
    >>"$OUT/kvd.log" 2>&1 &
  KVD_PID=$!
  wait_port "$KVD_PORT" "$KVD_PID"
}

start_redis() {
  # shellcheck disable=SC2046 # a flag list
  eval "set -- $(redis_persist_args)"
  "${SRV_PIN[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" "$@" \
    --maxclients $((IDLE_CONNS + 100)) --daemonize no --loglevel warning \
    >>"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_port "$REDIS_PORT" "$REDIS_PID"
}

stop_servers() {
  stop_pid "$KVD_PID"; KVD_PID=""
  stop_pid "$REDIS_PID"; REDIS_PID=""
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks

# kvbench SERVER ARGS...: run kvbench against kvd or redis with ARGS.
kvbench() {
  local server=$1; shift
  local target
  if [ "$server" = kvd ]; then
    target=(-proto kvd -addr "127.0.0.1:$KVD_PORT")
  else
    target=(-proto resp -addr "127.0.0.1:$REDIS_PORT")
  fi
  echo "kvbench ${target[*]} $*" >>"$OUT/commands.txt"
  "${CLI_PIN[@]}" "$WORK/kvbench" "${target[@]}" "$@"
}

redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
{
  echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "go: $(go version | awk '{print $3}'), redis-server: $redis_version, kvd: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
  echo "settings: -d $DUR, $ROUNDS rounds, pin=$PIN, durable=${DURABLE:-off (in memory)}, rate=${RATE:-closed loop}"
} | tee "$OUT/machine.txt"

# ---- throughput and latency ------------------------------------------------

if [ "$DO_TPUT" = 1 ]; then
  start_kvd
  start_redis
  log "prefilling 100000 keys of 64 bytes in each server"
  kvbench kvd -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null
  kvbench redis -prefill -load-only -keys 100000 -vsize 64 -c 16 -q >/dev/null

  : >"$OUT/results.jsonl"
  for sc in "${SCENARIOS[@]}"; do
    name=${sc%%|*}
    args=${sc#*|}
    selected "$name" || continue
    for round in $(seq "$ROUNDS"); do
      for server in kvd redis; do
        log "$name round $round/$ROUNDS: $server"
        # shellcheck disable=SC2086 # args is a list of flags
        pid=$KVD_PID
        [ "$server" = redis ] && pid=$REDIS_PID
        t0=$(cpu_ticks "$pid")
        line=$(kvbench "$server" $args ${RATE:+-rate "$RATE"} -d "$DUR" -json -q) || log "  kvbench reported a failure: $line"
        t1=$(cpu_ticks "$pid")
        ops=$(echo "$line" | json_field ops | head -1)
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="${ops:-0}" 'BEGIN {printf "%.3f", (n>0)?t*1e6/hz/n:0}')
        echo "{\"scenario\":\"$name\",\"server\":\"$server\",\"round\":$round,\"cpu_us_per_op\":$cpu,\"run\":$line}" >>"$OUT/results.jsonl"
      done
    done
  done
  stop_servers
  print_table "$OUT/results.jsonl"
fi

# ---- memory -------------------------------------------------------------------

if [ "$DO_MEM" = 1 ]; then
  echo
  echo "Memory (VmRSS), each on a freshly started server"
  printf '%-34s | %12s | %12s | %s\n' measurement "kvd" "redis" "ratio"
  printf -- '-----------------------------------+--------------+--------------+------\n'

  declare -A empty=() loaded=() idle=() opened=()
  start_kvd; start_redis
  empty[kvd]=$(rss_kib "$KVD_PID"); empty[redis]=$(rss_kib "$REDIS_PID")
  for server in kvd redis; do
    log "loading $MEM_KEYS keys of 64 bytes into $server"
    kvbench "$server" -prefill -load-only -keys "$MEM_KEYS" -vsize 64 -c 50 -q >/dev/null
  done
  sleep 2
  loaded[kvd]=$(rss_kib "$KVD_PID"); loaded[redis]=$(rss_kib "$REDIS_PID")
  stop_servers

  start_kvd; start_redis
  for server in kvd redis; do
    pid=$KVD_PID
    [ "$server" = redis ] && pid=$REDIS_PID
    before=$(rss_kib "$pid")
    log "opening $IDLE_CONNS idle connections to $server"
    # Run the binary itself in the background (not the shell function), so
    # that $! is kvbench's own PID and stop_pid reaches it.
    target=(-proto kvd -addr "127.0.0.1:$KVD_PORT")
    [ "$server" = redis ] && target=(-proto resp -addr "127.0.0.1:$REDIS_PORT")
    echo "kvbench ${target[*]} -idle $IDLE_CONNS -d 120s -json -q" >>"$OUT/commands.txt"
    "${CLI_PIN[@]}" "$WORK/kvbench" "${target[@]}" -idle "$IDLE_CONNS" -d 120s -json -q \
      >"$WORK/idle.json" 2>"$WORK/idle.err" &
    IDLE_PID=$!
    for _ in $(seq 600); do
      [ -s "$WORK/idle.json" ] && break
      kill -0 "$IDLE_PID" 2>/dev/null || break
      sleep 0.1
    done
    sleep 2
    idle[$server]=$(rss_kib "$pid")
    opened[$server]=$(json_field idle_open <"$WORK/idle.json")
    stop_pid "$IDLE_PID"; IDLE_PID=""
    log "$server: RSS $before KiB before, ${idle[$server]} KiB with ${opened[$server]:-0} idle connections"
  done
  stop_servers

  row() { # row LABEL KVD_KIB REDIS_KIB
    printf '%-34s | %8.1f MiB | %8.1f MiB | %5.2fx\n' "$1" "$(awk -v k="$2" 'BEGIN {print k/1024}')" \
      "$(awk -v k="$3" 'BEGIN {print k/1024}')" "$(awk -v a="$2" -v b="$3" 'BEGIN {print (b>0)?a/b:0}')"
  }
  row "empty server" "${empty[kvd]}" "${empty[redis]}"
  row "$MEM_KEYS keys x 64 B" "${loaded[kvd]}" "${loaded[redis]}"
  row "$IDLE_CONNS idle connections" "${idle[kvd]}" "${idle[redis]}"
  echo "idle connections actually open: kvd ${opened[kvd]:-0}, redis ${opened[redis]:-0}"
  echo "ratio is kvd/redis: below 1 favours kvd."
fi

echo
echo "raw results and the exact kvbench commands: $OUT"
