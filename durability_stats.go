package kvstore

// DurabilityStats are the figures of a durable store's commit log and
// snapshots (Store.DurabilityStats). In Stats, and so in the answer to
// STATS, they appear only for a store made by Open.
type DurabilityStats struct {
	// LogBytes is the size of the commit log on disk: the log segments
	// written since the last snapshot (with the segment the snapshot
	// only partly covers, after a restart or a failed compaction), which
	// a restart replays on top of that snapshot. It is at least the
	// segment's header, and drops when a compaction ends.
	LogBytes int64 `json:"log_bytes"`
	// SnapshotBytes is the size of the newest snapshot; 0 if there is
	// none.
	SnapshotBytes int64 `json:"snapshot_bytes"`
	// SnapshotUnix is when the newest snapshot was written, in seconds
	// since the Unix epoch (for a snapshot found by Open, its file's
	// modification time); 0 if there is none.
	SnapshotUnix int64 `json:"snapshot_unix"`
	// Compactions counts the compactions that wrote a snapshot since
	// Open (automatic ones and Compact/COMPACT alike).
	Compactions uint64 `json:"compactions"`
}

// DurabilityStats returns the figures of the store's commit log and
// snapshots, or nil for a store made by New (in memory only). It reads a
// few atomic counters: cheap enough for every STATS and metrics scrape.
func (s *Store) DurabilityStats() *DurabilityStats {
	d := s.dur
	if d == nil {
		return nil
	}
	st := &DurabilityStats{
		SnapshotBytes: d.lastSnapSize.Load(),
		SnapshotUnix:  d.lastSnapUnix.Load(),
		Compactions:   d.compacted.Load(),
	}
	if d.log != nil {
		st.LogBytes = d.log.Bytes()
	}
	return st
}
