package main

import (
	"os"
	"runtime"

	"github.com/kvd-dev/kvstore"
)

// reserveLogWriterP gives the commit log's writer a P of its own under
// -fsync always, unless GOMAXPROCS is set in the environment: GOMAXPROCS
// becomes one more than it was, and the event loops stay as many as they
// would have been (cfg.loops, when it is automatic, is fixed at one per
// P but one). It reports whether it did.
//
// Why: an event loop keeps its P while it waits in epoll_wait because
// another P is idle (the runtime's sysmon takes a P away from a thread in
// a system call only when no P is idle; see defaultEventLoops in the
// kvstore package). Under -fsync always the log writer (or a loop that
// syncs the log itself, when its clients mostly write) spends much of its
// time in fdatasync, holding that spare P; with no P idle, sysmon then
// takes the writer's or the loop's P on every sync, wakes a thread to run
// it, and itself polls every 20 µs. With one P more, the writer's sync
// leaves a P idle and none of that happens (BENCHMARKS.md, "Durability":
// about a fifth less CPU per write).
func reserveLogWriterP(cfg *config) bool {
	if cfg.dir == "" || cfg.syncMode != kvstore.SyncAlways || os.Getenv("GOMAXPROCS") != "" {
		return false
	}
	procs := runtime.GOMAXPROCS(0)
	if cfg.loops < 0 {
		cfg.loops = max(1, procs-1)
	}
	runtime.GOMAXPROCS(procs + 1)
	return true
}
