#!/usr/bin/env bash
# durability.sh: recovery time and compaction cost of kvd's durable mode,
# next to Redis's AOF (issue 9).
#
#  1. Recovery, log only: load N keys of 64 bytes through kvbench -prefill
#     (kvd -dir -fsync no -auto-compact 0; redis --appendonly yes --appendfsync no with
#     automatic AOF rewrite off), stop the servers (SIGTERM), restart them
#     on their data and time until each answers PING (kvd: it listens once
#     recovered; redis: PONG rather than LOADING). Redis 7 keeps a
#     multi-part AOF (appendonlydir/: a base file and an incr file of
#     commands); started empty, its base is an empty RDB, so this load is
#     the commands of the incr file. Also the data sizes.
#  2. Recovery, snapshot + log: compact (kvd: COMPACT; redis:
#     BGREWRITEAOF, which with Redis 7's default aof-use-rdb-preamble yes
#     writes the base as RDB), then write N/10 more keys, restart and time
#     again.
#  3. Compaction while serving: on the loaded kvd, a kvbench run of -d
#     (50 connections, GET:PUT 9:1 over all N keys) without compaction,
#     then the same run with COMPACT sent three seconds in; RSS sampled
#     every 50 ms; reports RSS before, peak RSS during each run, the RSS
#     when COMPACT is sent and its peak until the new snapshot is in place
#     (sampled every 10 ms), the
#     throughput from STATS's command count in the 2 s before COMPACT and
#     from COMPACT until the new snapshot is in place, and both runs'
#     throughputs.
#  4. The same with Redis's BGREWRITEAOF on its data of step 2.
#
# Usage: bench/durability.sh [-n 1000000] [-d 15s]
# Run it under the bench lock: flock /tmp/kvd-bench.lock bash bench/durability.sh
set -euo pipefail

N=1000000
DUR=15s
while getopts "n:d:h" opt; do
  case $opt in
    n) N=$OPTARG ;;
    d) DUR=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d /tmp/kvd-durability.XXXXXX)
KVD_PORT=4001
REDIS_PORT=6390
KVD_PID=""
REDIS_PID=""
SAMPLER_PID=""

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$SAMPLER_PID"; stop_pid "$KVD_PID"; stop_pid "$REDIS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log() { echo "durability: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b-a}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

command -v redis-server >/dev/null || { apt-get update && apt-get install -y redis-server; }
go build -o "$WORK/kvd" ./cmd/kvd
go build -o "$WORK/kvbench" ./cmd/kvbench
mkdir -p "$WORK/kvd-data" "$WORK/redis-data"

# ask PORT CMD: one request over /dev/tcp, prints the first response line.
ask() {
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf '%s\r\n' "$2" >&3
  local line
  read -r -t 600 line <&3 || true
  exec 3>&-
  echo "$line"
}
wait_answer() { # wait_answer PORT CMD WANT PID
  for _ in $(seq 60000); do
    kill -0 "$4" 2>/dev/null || { log "server exited"; return 1; }
    if r=$( (ask "$1" "$2") 2>/dev/null) && [[ $r == *"$3"* ]]; then return 0; fi
    sleep 0.01
  done
  return 1
}
start_kvd() {
  "$WORK/kvd" -addr "127.0.0.1:$KVD_PORT" -dir "$WORK/kvd-data" -fsync "$1" -auto-compact 0 -log-level info >>"$WORK/kvd.log" 2>&1 &
  KVD_PID=$!
  wait_answer "$KVD_PORT" PING PONG "$KVD_PID"
}
start_redis() {
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly yes --appendfsync "$1" \
    --auto-aof-rewrite-percentage 0 --dir "$WORK/redis-data" --daemonize no --loglevel notice >>"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  wait_answer "$REDIS_PORT" PING PONG "$REDIS_PID"
}
kb() { local server=$1; shift
  if [ "$server" = kvd ]; then "$WORK/kvbench" -proto kvd -addr "127.0.0.1:$KVD_PORT" "$@"
  else "$WORK/kvbench" -proto resp -addr "127.0.0.1:$REDIS_PORT" "$@"; fi
}
du_mib() { du -sk "$1" | awk '{printf "%.1f MiB", $1/1024}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); shared with other work"
echo "go: $(go version | awk '{print $3}'), redis: $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), kvd: $(git rev-parse --short HEAD)"
# stats_durable: the durability figures of kvd's STATS.
stats_durable() { ask "$KVD_PORT" STATS | grep -o '"\(keys\|log_bytes\|snapshot_bytes\|snapshot_unix\|compactions\)":[0-9.e+]*' | tr '\n' ' '; }
redis_files() { (cd "$WORK/redis-data" && find . -type f -printf '%P %s B, ' | sed 's/, $//'); }

log "loading $N keys of 64 bytes into each"
start_kvd no; start_redis no
kb kvd -prefill -load-only -keys "$N" -vsize 64 -c 50 -q >/dev/null
kb redis -prefill -load-only -keys "$N" -vsize 64 -c 50 -q >/dev/null
stop_pid "$KVD_PID"; KVD_PID=""; stop_pid "$REDIS_PID"; REDIS_PID=""
echo
echo "1. recovery of $N keys, log only: data kvd $(du_mib "$WORK/kvd-data"), redis $(du_mib "$WORK/redis-data")"
t=$(now); start_kvd no; echo "   kvd restart until it answers: $(since "$t") s ($(grep -o 'took=[^ ]*' "$WORK/kvd.log" | tail -1)), RSS $(rss_kib "$KVD_PID") KiB"
echo "   kvd STATS: $(stats_durable)"
t=$(now); start_redis no; echo "   redis restart until it answers: $(since "$t") s ($(grep -o 'DB loaded from append only file: [0-9.]* seconds' "$WORK/redis.log" | tail -1)), RSS $(rss_kib "$REDIS_PID") KiB"
echo "   redis files: $(redis_files); aof-use-rdb-preamble $(redis-cli -p "$REDIS_PORT" config get aof-use-rdb-preamble | tail -1)"

log "compacting, then $((N / 10)) more writes"
ask "$KVD_PORT" COMPACT >/dev/null
ask "$REDIS_PORT" BGREWRITEAOF >/dev/null
for _ in $(seq 6000); do
  ls "$WORK/kvd-data"/snap-*.snap >/dev/null 2>&1 && [ "$(ls "$WORK/kvd-data"/log-*.wal | wc -l)" = 1 ] && break
  sleep 0.1
done
for _ in $(seq 6000); do
  redis-cli -p "$REDIS_PORT" info persistence | grep -q 'aof_rewrite_in_progress:0' && break
  sleep 0.1
done
kb kvd -prefill -load-only -keys $((N / 10)) -vsize 64 -c 50 -q >/dev/null
kb redis -prefill -load-only -keys $((N / 10)) -vsize 64 -c 50 -q >/dev/null
stop_pid "$KVD_PID"; KVD_PID=""; stop_pid "$REDIS_PID"; REDIS_PID=""
echo
echo "2. recovery, snapshot + log of $((N / 10)) writes: data kvd $(du_mib "$WORK/kvd-data") ($(ls "$WORK/kvd-data" | tr '\n' ' ')), redis $(du_mib "$WORK/redis-data")"
t=$(now); start_kvd everysec; echo "   kvd restart until it answers: $(since "$t") s ($(grep -o 'took=[^ ]*' "$WORK/kvd.log" | tail -1)), RSS $(rss_kib "$KVD_PID") KiB"
echo "   kvd STATS: $(stats_durable)"
t=$(now); start_redis everysec; echo "   redis restart until it answers: $(since "$t") s ($(grep -o 'DB loaded from append only file: [0-9.]* seconds' "$WORK/redis.log" | tail -1)), RSS $(rss_kib "$REDIS_PID") KiB"
echo "   redis files: $(redis_files)"
stop_pid "$REDIS_PID"; REDIS_PID=""

echo
echo "3. compaction of $N keys while serving (kvd -fsync everysec; kvbench -c 50 -ratio 9:1 -d $DUR)"
# sample FILE: the peak RSS of kvd into FILE, every 50 ms, until stopped.
sample() { ( peak=0; while kill -0 "$KVD_PID" 2>/dev/null; do r=$(rss_kib "$KVD_PID"); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$1"; sleep 0.05; done ) & SAMPLER_PID=$!; }
before=$(rss_kib "$KVD_PID")
sample "$WORK/peak_base"
base=$(kb kvd -c 50 -P 1 -ratio 9:1 -vsize 64 -keys "$N" -d "$DUR" -json -q)
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
after_base=$(rss_kib "$KVD_PID")
sample "$WORK/peak"
# The compactor: STATS's command count one second into the run and two
# seconds later (throughput before), then COMPACT, and the count again
# when the new snapshot is renamed into place (throughput during).
# newest_snap: the newest snapshot's name; never fails (an ls racing
# with the compaction's removal of the old snapshot did, and set -e ended
# the compactor).
newest_snap() { local f last=""; for f in "$WORK/kvd-data"/snap-*.snap; do [ -e "$f" ] && last=$f; done; echo "$last"; }
commands() { ask "$KVD_PORT" STATS | grep -o '"commands":[0-9]*' | cut -d: -f2; }
( sleep 1; c0=$(commands); t0=$(now); sleep 2; c1=$(commands); t1=$(now)
  n0=$(newest_snap); r0=$(rss_kib "$KVD_PID"); rpk=$r0; ask "$KVD_PORT" COMPACT >"$WORK/compact_answer"
  for _ in $(seq 60000); do n1=$(newest_snap); r=$(rss_kib "$KVD_PID"); [ "$r" -gt "$rpk" ] && rpk=$r; [ "$n1" != "$n0" ] && break; sleep 0.01; done
  c2=$(commands); t2=$(now)
  echo "$r0 $rpk" >"$WORK/rss_compact"
  echo "$(since "$t1")" >"$WORK/compact_s"
  awk -v c0="$c0" -v c1="$c1" -v c2="$c2" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
    'BEGIN {printf "%.0f ops/s in the 2 s before COMPACT, %.0f ops/s from COMPACT to the rename (%.2fx)", (c1-c0)/(t1-t0), (c2-c1)/(t2-t1), ((c2-c1)/(t2-t1))/((c1-c0)/(t1-t0))}' >"$WORK/window" ) &
COMPACTOR_PID=$!
comp=$(kb kvd -c 50 -P 1 -ratio 9:1 -vsize 64 -keys "$N" -d "$DUR" -json -q)
wait "$COMPACTOR_PID" 2>/dev/null || true
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
ops() { echo "$1" | grep -o '"ops_per_sec":[0-9.]*' | head -1 | cut -d: -f2; }
p99() { echo "$1" | sed 's/.*"latency_us"://' | grep -o '"p99":[0-9.]*' | head -1 | cut -d: -f2; }
echo "   RSS before: $before KiB; after a run without compaction: $after_base KiB; peak during the run with compaction: $(cat "$WORK/peak") KiB ($(awk -v a="$(cat "$WORK/peak")" -v b="$after_base" 'BEGIN {printf "%.2fx", a/b}') the RSS after the run without, $(awk -v a="$(cat "$WORK/peak")" -v b="$before" 'BEGIN {printf "%.2fx", a/b}') the RSS before)"
echo "   peak RSS during the run without compaction: $(cat "$WORK/peak_base") KiB"
read -r r0 rpk <"$WORK/rss_compact" || true
echo "   RSS when COMPACT was sent: ${r0:-?} KiB; peak from COMPACT to the rename: ${rpk:-?} KiB ($(awk -v a="${rpk:-0}" -v b="${r0:-1}" 'BEGIN {printf "%.2fx", a/b}'))"
echo "   COMPACT answered: $(cat "$WORK/compact_answer"); kvd STATS after: $(stats_durable)"
echo "   compaction took $(cat "$WORK/compact_s" 2>/dev/null || echo '?') s (COMPACT to the new snapshot's rename)"
echo "   throughput (STATS commands) $(cat "$WORK/window" 2>/dev/null || echo '?')"
echo "   throughput of whole runs without compaction: $(ops "$base") ops/s (p99 $(p99 "$base") us); with: $(ops "$comp") ops/s (p99 $(p99 "$comp") us)"

# The same for Redis, for comparison: BGREWRITEAOF (a forked child writes
# the RDB-preamble base) three seconds into a run on the data of step 2.
# Memory: the server's RSS, and the peak of server + child as the sum of
# their PSS (/proc/PID/smaps_rollup: a page shared by both counts half in
# each, so the pages the fork shares are counted once, and the ones
# copied on write twice).
stop_pid "$KVD_PID"; KVD_PID=""
echo
echo "4. Redis BGREWRITEAOF of the same keys while serving (--appendfsync everysec; the same kvbench runs)"
start_redis everysec
rinfo() { redis-cli -p "$REDIS_PORT" info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
rsample() { ( peak=0; while kill -0 "$REDIS_PID" 2>/dev/null; do r=$(pss_kib "$REDIS_PID"); for c in $(pgrep -P "$REDIS_PID"); do r=$((r + $(pss_kib "$c"))); done
  [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$1"; sleep 0.05; done ) & SAMPLER_PID=$!; }
rbefore=$(rss_kib "$REDIS_PID")
rsample "$WORK/rpeak_base"
rbase=$(kb redis -c 50 -P 1 -ratio 9:1 -vsize 64 -keys "$N" -d "$DUR" -json -q)
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
rafter_base=$(rss_kib "$REDIS_PID")
rsample "$WORK/rpeak"
( sleep 1; c0=$(rinfo stats total_commands_processed); t0=$(now); sleep 2; c1=$(rinfo stats total_commands_processed); t1=$(now)
  redis-cli -p "$REDIS_PORT" bgrewriteaof >/dev/null
  for _ in $(seq 60000); do [ "$(rinfo persistence aof_rewrite_in_progress)" = 0 ] && [ "$(rinfo persistence aof_rewrite_scheduled)" = 0 ] && break; sleep 0.01; done
  c2=$(rinfo stats total_commands_processed); t2=$(now)
  echo "$(since "$t1")" >"$WORK/rcompact_s"
  awk -v c0="$c0" -v c1="$c1" -v c2="$c2" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
    'BEGIN {printf "%.0f ops/s in the 2 s before BGREWRITEAOF, %.0f ops/s from BGREWRITEAOF to its end (%.2fx)", (c1-c0)/(t1-t0), (c2-c1)/(t2-t1), ((c2-c1)/(t2-t1))/((c1-c0)/(t1-t0))}' >"$WORK/rwindow" ) &
COMPACTOR_PID=$!
rcomp=$(kb redis -c 50 -P 1 -ratio 9:1 -vsize 64 -keys "$N" -d "$DUR" -json -q)
wait "$COMPACTOR_PID" 2>/dev/null || true
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
echo "   RSS before: $rbefore KiB; after a run without rewrite: $rafter_base KiB; peak PSS of server + child during the run with the rewrite: $(cat "$WORK/rpeak") KiB ($(awk -v a="$(cat "$WORK/rpeak")" -v b="$rafter_base" 'BEGIN {printf "%.2fx", a/b}') the RSS after the run without); peak PSS during the run without: $(cat "$WORK/rpeak_base") KiB"
echo "   rewrite took $(cat "$WORK/rcompact_s" 2>/dev/null || echo '?') s (BGREWRITEAOF until aof_rewrite_in_progress:0)"
echo "   throughput (INFO total_commands_processed) $(cat "$WORK/rwindow" 2>/dev/null || echo '?')"
echo "   throughput of whole runs without rewrite: $(ops "$rbase") ops/s (p99 $(p99 "$rbase") us); with: $(ops "$rcomp") ops/s (p99 $(p99 "$rcomp") us)"
