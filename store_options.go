package kvstore

import (
	"log/slog"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// StoreOption configures a Store; pass StoreOptions to New (or Open).
//
// Like the Server's Options, StoreOptions never fail: a value out of range
// keeps the default (see each option).
type StoreOption func(*storeConfig)

// storeConfig is what the StoreOptions set.
type storeConfig struct {
	maxMemory int64 // 0: no limit

	// Durability (Open).
	sync            SyncMode
	autoCompactMin  int64 // < 0: off
	recoverTruncate bool
	logger          *slog.Logger
	fs              wal.FS
	logReserve      int64 // see wal.Options.Reserve

	clock Clock // nil: time.Now
}

func defaultStoreConfig() storeConfig {
	return storeConfig{autoCompactMin: DefaultAutoCompactMin, logger: slog.New(slog.DiscardHandler), fs: wal.OS{}, logReserve: logReserve}
}

// WithMaxMemory limits the memory the store holds (see Store.MemoryUsage) to
// bytes. A write that would take it past the limit (Store.Put, Txn.Put, and
// the outermost Txn.Commit of a transaction that puts) fails with an error
// wrapping ErrMemoryLimit and applies nothing; reads and deletes keep
// working, and once deletes have freed enough memory, writes succeed again.
// bytes <= 0 means no limit, the default.
func WithMaxMemory(bytes int64) StoreOption {
	return func(c *storeConfig) { c.maxMemory = max(bytes, 0) }
}
