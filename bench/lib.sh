# lib.sh: the setup that bench/syscalls.sh, tail.sh and switches.sh share.
# Sourced, not run.

# bench_setup NAME sets ROOT (this checkout), WORK (a new directory
# /tmp/kvd-NAME.XXXXXX, removed on exit together with the server whose
# PID the caller keeps in PID), builds kvbench into WORK, and sets KVD to
# the kvd binary: KVD_BIN if set, otherwise one built from this checkout.
bench_setup() {
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  WORK=$(mktemp -d "/tmp/kvd-$1.XXXXXX")
  PID=""
  trap bench_cleanup EXIT
  (cd "$ROOT" && go build -o "$WORK/kvbench" ./cmd/kvbench)
  KVD=${KVD_BIN:-}
  if [ -z "$KVD" ]; then
    (cd "$ROOT" && go build -o "$WORK/kvd" ./cmd/kvd)
    KVD=$WORK/kvd
  fi
}

# bench_cleanup stops the server in PID, if any, and removes WORK.
bench_cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
