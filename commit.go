package kvstore

// commit publishes the outermost level of t and ends t, in the oracle's
// critical section: validate the read set, take a commit timestamp, install
// every write with all the shards it touches locked, publish the timestamp.
// Readers of those shards wait for the install and then see all of it; no
// reader sees part of it.
func (s *Store) commit(t *Txn) error {
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()

	writes, reads, readTs, bufs := t.levels[0], t.reads, t.readTs, t.bufs
	// The snapshot is released first, so that the install below keeps no
	// history for it; its buffers are recycled once the install is done.
	oldestEnded := s.release(t)
	defer func() {
		bufs.recycle()
		if oldestEnded && len(o.dirty) > 0 {
			s.sweepLocked()
		}
	}()

	if writes.len() == 0 {
		return nil // read-only: never conflicts
	}
	for _, r := range reads.items {
		if s.changedSince(r.key, r.hash, readTs) {
			return ErrConflict
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
	active := s.activeForInstall()
	var delta int64
	for j, it := range writes.items {
		key, h, w, sh := it.key, it.hash, it.val, &s.shards[shards[j]]
		switch {
		case !w.del:
			if s.install(sh, key, h, w.val, ts, active) {
				delta++
			}
		case sh.holdsValue(key, h):
			s.installDelete(sh, key, h, ts, active)
			delta--
		}
	}
	s.live.Add(delta)
	o.committed.Store(ts)
	return nil
}

// end ends t without publishing anything.
func (s *Store) end(t *Txn) {
	bufs := t.bufs
	s.oracle.mu.Lock()
	defer s.oracle.mu.Unlock()
	if s.release(t) && len(s.oracle.dirty) > 0 {
		s.sweepLocked()
	}
	bufs.recycle()
}

// release unregisters t's snapshot and drops its buffers, which ends t; the
// caller recycles t.bufs once it no longer reads them. It reports whether t held the oldest snapshot, so that the history only it
// could see may now be trimmed. Requires s.oracle.mu.
func (s *Store) release(t *Txn) (oldestEnded bool) {
	t.levels = nil
	t.levelBuf = [2]keyed[write]{}
	t.reads = keyed[struct{}]{}
	t.arena = keyArena{}
	t.bufs = nil
	return s.oracle.endLocked(t.readTs)
}
