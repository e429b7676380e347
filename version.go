package kvstore

// A key's history is a chain of versions, newest first. The newest version
// lives in the shard's table (a slot); older versions, kept only while an
// open transaction's snapshot can still see them, hang off it as a linked
// list in the shard's side map. An entry is that chain, loaded for the
// algorithms below, which decide what to keep.
//
// Commit timestamps are below 1<<63; the top bit of a stored timestamp marks
// a tombstone (the key was deleted at that timestamp).

const tombstoneBit = 1 << 63

// entry is the newest version of a key plus the older versions still visible
// to some open snapshot.
type entry struct {
	val   string
	ts    uint64 // commit timestamp | tombstoneBit for a deletion
	exp   int64  // expiry time in unix nanoseconds, 0 for none (see expiry.go)
	older *version
}

// version is one older value of a key, visible to snapshots taken at or after
// its commit timestamp and before the next newer version's.
type version struct {
	val   string
	ts    uint64
	exp   int64
	older *version
	// owner is the read timestamp of the newest open snapshot that sees
	// this version. No newer snapshot can ever see it, so the version may
	// become garbage only when its owner ends: the key is then in the
	// owner's pinned set (see oracle), to be trimmed again.
	owner uint64
}

func (e *entry) commitTs() uint64 { return e.ts &^ tombstoneBit }
func (e *entry) deleted() bool    { return e.ts&tombstoneBit != 0 }

// live reports whether the newest version holds a value.
func (e *entry) live() bool { return e.ts&tombstoneBit == 0 }

// readAt returns the value visible to a snapshot at readTs taken at time
// now (unix nanoseconds): the newest version committed at or before readTs,
// and its expiry time. ok is false when that version is a tombstone, has
// expired by now, or when the key did not exist yet.
func (e *entry) readAt(readTs uint64, now int64) (val string, exp int64, ok bool) {
	if e.commitTs() <= readTs {
		return e.val, e.exp, e.live() && !expired(e.exp, now)
	}
	for v := e.older; v != nil; v = v.older {
		if v.ts&^tombstoneBit <= readTs {
			return v.val, v.exp, v.ts&tombstoneBit == 0 && !expired(v.exp, now)
		}
	}
	return "", 0, false
}

// push makes (val, ts) the newest version and moves the previous newest one
// into the history, then drops the history no snapshot in active can see.
// active holds the read timestamps of open transactions in ascending order,
// all below ts.
func (e *entry) push(val string, exp int64, ts uint64, active []uint64) {
	if len(active) == 0 || active[len(active)-1] < e.commitTs() && e.older == nil {
		// Nobody can see the old newest version once ts is published: the
		// common case, without allocating.
		*e = entry{val: val, ts: ts, exp: exp}
		return
	}
	old := &version{val: e.val, ts: e.ts, exp: e.exp, older: e.older}
	*e = entry{val: val, ts: ts, exp: exp, older: old}
	e.trim(active)
}

// trim drops the older versions that no snapshot in active can see, and
// trailing tombstones, which read the same as no version at all, and sets
// the owner of each version it keeps. Version v, whose next newer version
// committed at n, is visible exactly to snapshots with v.ts <= readTs < n.
// The newest version is always kept: every future snapshot sees it.
func (e *entry) trim(active []uint64) {
	newer := e.commitTs() // commit timestamp of the version above v in the original chain
	link := &e.older      // where the next kept version is attached
	for v := e.older; v != nil; v = v.older {
		ts := v.ts &^ tombstoneBit
		if owner, ok := newestIn(active, ts, newer); ok {
			v.owner = owner
			*link = v
			link = &v.older
		}
		newer = ts
	}
	*link = nil
	e.dropTrailingTombstones()
}

// dropTrailingTombstones removes tombstones at the old end of the history.
func (e *entry) dropTrailingTombstones() {
	end := &e.older // the link after the oldest live version
	for v := e.older; v != nil; v = v.older {
		if v.ts&tombstoneBit == 0 {
			end = &v.older
		}
	}
	*end = nil
}

// newestIn returns the largest timestamp in the ascending slice active that
// lies in [from, to), if there is one.
func newestIn(active []uint64, from, to uint64) (uint64, bool) {
	// Binary search for the first timestamp >= to.
	lo, hi := 0, len(active)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if active[mid] < to {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 || active[lo-1] < from {
		return 0, false
	}
	return active[lo-1], true
}
