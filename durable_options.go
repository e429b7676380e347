package kvstore

import (
	"log/slog"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// SyncMode says when a durable store (see Open) forces its commit log to
// disk.
type SyncMode int

const (
	// SyncEverySecond syncs the log about once a second, in the
	// background: a crash of the machine loses at most about the last two
	// seconds of acknowledged writes. A crash of the process alone loses
	// nothing acknowledged: Store.Put, Store.Delete and Txn.Commit return,
	// and the server answers, only once the commit is handed to the
	// operating system (written, not synced). The default, like Redis's
	// appendfsync everysec.
	SyncEverySecond SyncMode = iota
	// SyncAlways makes every acknowledged write durable before it is
	// acknowledged: Store.Put, Store.Delete and the outermost Txn.Commit
	// return once their commit is synced (concurrent commits share one
	// write and one fsync), and the server sends no response that reveals
	// a commit not yet synced.
	SyncAlways
	// SyncNever leaves syncing to the operating system (and Close); the
	// log is handed to it as under SyncEverySecond.
	SyncNever
)

// String returns the name kvd's -fsync flag uses: always, everysec, no.
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncNever:
		return "no"
	}
	return "everysec"
}

// ParseSyncMode parses the names String returns.
func ParseSyncMode(s string) (SyncMode, bool) {
	switch s {
	case "always":
		return SyncAlways, true
	case "everysec":
		return SyncEverySecond, true
	case "no":
		return SyncNever, true
	}
	return SyncEverySecond, false
}

// DefaultAutoCompactMin is the log size below which a durable store never
// compacts on its own (see WithAutoCompact).
const DefaultAutoCompactMin = 64 << 20

// WithSync sets when a store made by Open syncs its log; the default is
// SyncEverySecond. A store made by New ignores it.
func WithSync(m SyncMode) StoreOption {
	return func(c *storeConfig) {
		if m >= SyncEverySecond && m <= SyncNever {
			c.sync = m
		}
	}
}

// WithAutoCompact sets the log size from which a store made by Open
// compacts by itself: when the current log segment is larger than both
// minBytes and the last snapshot, a snapshot is written in the background
// and the log it covers removed (as Redis's auto-aof-rewrite-min-size and
// auto-aof-rewrite-percentage 100). 0 keeps DefaultAutoCompactMin; a
// negative value turns automatic compaction off (Store.Compact still
// works).
func WithAutoCompact(minBytes int64) StoreOption {
	return func(c *storeConfig) {
		if minBytes != 0 {
			c.autoCompactMin = minBytes
		}
	}
}

// WithRecoverTruncate makes Open start from the valid prefix of a damaged
// log instead of failing: the log is cut at the first damaged record, and
// later segments are renamed to NAME.damaged (kept for inspection). The
// records after the damage are lost. Without it (the default), damage
// before the end of the log stops Open with an error naming the file and
// the offset. A torn tail (an incomplete or garbage end of the last
// segment, as a crash in the middle of a write leaves) is always cut off,
// with a log line.
func WithRecoverTruncate(on bool) StoreOption {
	return func(c *storeConfig) { c.recoverTruncate = on }
}

// WithStoreLogger sets where a durable store reports what recovery and
// compaction did (a torn tail cut off, a compaction failed). The default
// discards it.
func WithStoreLogger(l *slog.Logger) StoreOption {
	return func(c *storeConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// withFS makes Open use fs instead of the operating system's files
// (tests: wal.StrictMem), with a log reservation of 16 KiB, which the
// tests' records outgrow many times (StrictMem copies a file that is
// overwritten after a sync: a 4 MiB reservation would make every sync
// copy megabytes).
func withFS(fs wal.FS) StoreOption {
	return func(c *storeConfig) { c.fs, c.logReserve = fs, 16<<10 }
}

// withLogReserve sets the log's reservation (tests; after withFS).
func withLogReserve(n int64) StoreOption {
	return func(c *storeConfig) { c.logReserve = n }
}

// logReserve is how much space the log keeps written (zeros) and synced
// ahead of its records, so that a sync of records need not also write
// the file's new size (see internal/wal/reserve.go).
const logReserve = 4 << 20
