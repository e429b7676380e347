package kvstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// Compact writes a snapshot of the store and removes the log it makes
// unnecessary, so that the log does not grow without bound and recovery
// stays fast. Readers and writers go on meanwhile: the snapshot is taken
// from an MVCC snapshot (the versions it sees are kept until it ends),
// streamed to a temporary file one shard at a time, synced and renamed
// into place; memory grows by the versions that commits replace during the
// compaction, not by a copy of the store. A crash at any moment leaves a
// directory that Open recovers. A store compacts by itself too (see
// WithAutoCompact). On a store made by New, Compact does nothing.
func (s *Store) Compact() error {
	d := s.dur
	if d == nil {
		return nil
	}
	d.compactMu.Lock()
	defer d.compactMu.Unlock()
	if d.closed.Load() {
		return fmt.Errorf("kvstore: compact: %w", ErrClosed)
	}
	if err := d.log.Err(); err != nil {
		return fmt.Errorf("kvstore: compact: %w", err)
	}

	// Register the snapshot and start a new log segment at the same
	// point in commit order: the snapshot holds every commit up to readTs,
	// the new segment every commit after it.
	o := &s.oracle
	o.mu.Lock()
	readTs := o.beginLocked()
	rotated := d.log.Rotate(readTs + 1)
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		pinned := o.endLocked(readTs)
		o.mu.Unlock()
		s.sweep(pinned)
	}()
	if readTs == d.lastSnapTs.Load() {
		<-rotated
		return nil // nothing committed since the last snapshot
	}
	if err := <-rotated; err != nil {
		return fmt.Errorf("kvstore: compact: start a log segment: %w", err)
	}

	w, err := wal.CreateSnapshot(d.fs, d.dir, readTs)
	if err != nil {
		return fmt.Errorf("kvstore: compact: %w", err)
	}
	if err := s.writeSnapshot(w, readTs); err != nil {
		w.Abort()
		return fmt.Errorf("kvstore: compact: %w", err)
	}
	size, err := w.Commit()
	if err != nil {
		return fmt.Errorf("kvstore: compact: %w", err)
	}
	d.lastSnapTs.Store(readTs)
	d.lastSnapSize.Store(size)
	d.lastSnapUnix.Store(time.Now().Unix())
	d.compacted.Add(1)
	if err := s.dropCovered(readTs); err != nil {
		return err
	}
	d.log.ForgetOlder() // only the segment started at readTs+1 is left
	return nil
}

// writeSnapshot adds every key that holds a value at readTs to w, one
// shard at a time: the shard's pairs are copied out under its read lock
// (a 256th of the store), then written without it.
func (s *Store) writeSnapshot(w *wal.SnapshotWriter, readTs uint64) error {
	var keys, vals []string
	var exps []int64
	for i := range s.shards {
		sh := &s.shards[i]
		keys, vals, exps = keys[:0], vals[:0], exps[:0]
		sh.mu.RLock()
		for j := range sh.t.slots {
			if sh.t.slots[j].rec == nil {
				continue
			}
			e := sh.entryAt(j)
			// now 0: a key with a time to live is written with its
			// absolute expiry time, expired or not (it reads as missing,
			// and is reclaimed, after a restart as before it).
			if v, exp, ok := e.readAt(readTs, 0); ok {
				// Records are immutable: views of them stay valid.
				keys = append(keys, sh.t.key(j))
				vals = append(vals, v)
				exps = append(exps, exp)
			}
		}
		sh.mu.RUnlock()
		for j := range keys {
			if err := w.Add(keys[j], vals[j], exps[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropCovered removes the snapshots older than the one at snapTs and the
// log segments that hold only commits up to snapTs, then syncs the
// directory.
func (s *Store) dropCovered(snapTs uint64) error {
	d := s.dur
	names, err := d.fs.List(d.dir)
	if err != nil {
		return fmt.Errorf("kvstore: list %s: %w", d.dir, err)
	}
	ls := wal.ParseDir(names)
	removed := false
	for _, ts := range ls.Snapshots {
		if ts < snapTs {
			if err := d.fs.Remove(wal.Join(d.dir, wal.SnapshotName(ts))); err != nil {
				return fmt.Errorf("kvstore: remove old snapshot: %w", err)
			}
			removed = true
		}
	}
	for i := 0; i+1 < len(ls.Segments) && ls.Segments[i+1] <= snapTs+1; i++ {
		if err := d.fs.Remove(wal.Join(d.dir, wal.SegmentName(ls.Segments[i]))); err != nil {
			return fmt.Errorf("kvstore: remove covered log segment: %w", err)
		}
		removed = true
	}
	if removed {
		if err := d.fs.SyncDir(d.dir); err != nil {
			return fmt.Errorf("kvstore: sync %s: %w", d.dir, err)
		}
	}
	return nil
}

// autoCompact is called by the log writer after each batch: it starts a
// background compaction when the current segment has outgrown both the
// minimum and the last snapshot.
func (s *Store) autoCompact(segment int64) {
	d := s.dur
	min := s.cfg.autoCompactMin
	if min < 0 || segment < min || segment < d.lastSnapSize.Load() || d.closed.Load() {
		return
	}
	s.startCompaction()
}

// errInMemory is the error of COMPACT on a store made by New.
var errInMemory = errors.New("the store is in memory only (kvd without -dir): nothing to compact")

// startCompaction starts a compaction in the background unless one is
// running, and reports whether it did.
func (s *Store) startCompaction() (started bool, err error) {
	d := s.dur
	if d == nil {
		return false, errInMemory
	}
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if d.closed.Load() {
		return false, ErrClosed
	}
	if d.compacting.Swap(true) {
		return false, nil
	}
	d.compactions.Add(1)
	go func() {
		defer d.compactions.Done()
		defer d.compacting.Store(false)
		if err := s.Compact(); err != nil && !d.closed.Load() {
			s.cfg.logger.Error("kvstore: background compaction failed", "err", err)
		}
	}()
	return true, nil
}
