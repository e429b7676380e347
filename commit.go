package kvstore

import "unsafe"

// commit publishes the outermost level of t and ends t, then trims what
// t's snapshot alone pinned (see trimPinned). The records of its puts are
// made first, outside the oracle's mutex, unless a write has a time to
// live (whose expiry time is the commit's).
func (s *Store) commit(t *Txn) error {
	bufs := t.bufs
	var stack [16]unsafe.Pointer
	var recs []unsafe.Pointer
	if writes := t.levels[0].items; len(writes) > 0 && !hasTTL(writes) {
		recs = stack[:0]
		if len(writes) > len(stack) {
			recs = make([]unsafe.Pointer, 0, len(writes))
		}
		for _, w := range writes {
			var rec unsafe.Pointer
			if !w.val.del {
				rec = newRecord(w.key, w.val.val, 0)
			}
			recs = append(recs, rec)
		}
	}
	pinned, err := s.commitLocked(t, recs)
	bufs.recycle()
	s.trimPinned(pinned)
	return err
}

// commitLocked is commit's critical section, under the oracle's mutex:
// validate the read set (and the memory the writes need, under a limit),
// take a commit timestamp, install every write with
// all the shards it touches locked, publish the timestamp. Readers of those
// shards wait for the install and then see all of it; no reader sees part
// of it. It returns what t's snapshot pinned, if t was its last user.
// recs holds the record of each write of the outermost level that puts
// (nil for a delete), made with no expiry time; it is nil when the level
// has no writes or a write has a time to live (then the records are made
// here, with the commit's time).
func (s *Store) commitLocked(t *Txn, recs []unsafe.Pointer) (pinned map[string]struct{}, err error) {
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()

	writes, reads, ranges, readTs, minExp := t.levels[0], t.reads, t.ranges, t.readTs, t.minExp
	// The snapshot is released first, so that the install below keeps no
	// history for it.
	pinned = s.release(t)

	if writes.len() == 0 {
		return pinned, nil // read-only: never conflicts
	}
	// An expiry is a deletion committed at the instant the key expires: a
	// version this transaction read that expired since its snapshot was
	// taken counts as changed. The clock is read only when the commit
	// needs it: for that check, or for the writes with a time to live.
	var now int64
	if minExp != 0 || recs == nil { // recs is nil when a write has a time to live
		now = s.now()
	}
	if minExp != 0 && expired(minExp, now) {
		return pinned, ErrConflict
	}
	for _, r := range reads.items {
		if s.changedSince(r.key, r.hash, readTs) {
			return pinned, ErrConflict
		}
	}
	for i := range ranges {
		if s.rangeChangedSince(&ranges[i], readTs) {
			return pinned, ErrConflict
		}
	}
	if s.limited() {
		if err := s.checkCommitMemory(writes.items); err != nil {
			return pinned, err
		}
	}

	var locked [numShards / 64]uint64
	defer func() {
		for i := range s.shards {
			if locked[i/64]&(1<<(i%64)) != 0 {
				s.shards[i].unlock()
			}
		}
	}()
	shards := o.shardScratch[:0]
	for _, w := range writes.items {
		i := shardIndex(w.hash)
		shards = append(shards, uint16(i))
		if locked[i/64]&(1<<(i%64)) == 0 {
			locked[i/64] |= 1 << (i % 64)
			s.shards[i].lock()
		}
	}
	o.shardScratch = shards

	ts := o.committed.Load() + 1
	if s.dur != nil {
		if err := s.logCommit(writes.items, ts, now); err != nil {
			return pinned, err
		}
	}
	t.commitTs = ts
	active := s.activeForInstall()
	var delta int64
	for j, it := range writes.items {
		key, h, w, sh := it.key, it.hash, it.val, &s.shards[shards[j]]
		switch {
		case !w.del && recs != nil:
			if s.installRecord(sh, key, h, recs[j], 0, ts, active) {
				delta++
			}
		case !w.del:
			var exp int64
			if w.ttl > 0 {
				exp = deadline(now, w.ttl)
			}
			if s.install(sh, key, h, w.val, exp, ts, active) {
				delta++
			}
		case sh.holdsValue(key, h):
			s.installDelete(sh, key, h, ts, active)
			delta--
		}
	}
	s.live.Add(delta)
	o.committed.Store(ts)
	return pinned, nil
}

// hasTTL reports whether any of writes sets a time to live.
func hasTTL(writes []item[write]) bool {
	for i := range writes {
		if writes[i].val.ttl > 0 {
			return true
		}
	}
	return false
}

// checkCommitMemory returns an error wrapping ErrMemoryLimit when the
// records that writes put would take the store past its limit. A commit
// that only deletes is never refused.
func (s *Store) checkCommitMemory(writes []item[write]) error {
	var need int64
	for _, w := range writes {
		if !w.val.del {
			need += expRecordBytes(len(w.key), len(w.val.val), int64(w.val.ttl)) + orderedKeyBytes(len(w.key))
		}
	}
	if need == 0 {
		return nil
	}
	return s.checkMemory(need)
}

// end ends t without publishing anything, then trims what t's snapshot
// alone pinned.
func (s *Store) end(t *Txn) {
	bufs := t.bufs
	pinned := s.endLocked(t)
	bufs.recycle()
	s.trimPinned(pinned)
}

// endLocked releases t under the oracle's mutex.
func (s *Store) endLocked(t *Txn) map[string]struct{} {
	s.oracle.mu.Lock()
	defer s.oracle.mu.Unlock()
	return s.release(t)
}

// release unregisters t's snapshot and drops its buffers, which ends t; the
// caller recycles t.bufs once it no longer reads them. It returns the keys
// the snapshot pinned if t was its last user. Requires s.oracle.mu.
func (s *Store) release(t *Txn) (pinned map[string]struct{}) {
	t.levels = nil
	t.levelBuf = [2]keyed[write]{}
	t.reads = keyed[struct{}]{}
	t.ranges = nil
	t.minExp = 0
	t.arena = keyArena{}
	s.txnMem.Add(-t.bufs.reserved)
	t.bufs = nil
	return s.oracle.endLocked(t.readTs)
}
