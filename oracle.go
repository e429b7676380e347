package kvstore

import (
	"sort"
	"sync"
	"sync/atomic"
)

// oracle hands out timestamps and keeps track of the snapshots in use, in the
// spirit of badger's oracle. Its mutex is the one short critical section that
// every commit passes through: validate, take a commit timestamp, install,
// publish. Beginning and ending a transaction take it too, briefly, so that a
// snapshot is registered before any commit can reclaim what it sees.
//
// Nothing holds the mutex while a transaction is open, so no operation waits
// for another client's transaction; it only waits, at most, for another
// commit to finish installing.
type oracle struct {
	mu sync.Mutex

	// committed is the timestamp of the last published commit: a new
	// snapshot reads at it. Written under mu; atomic so that Len and tests
	// can read it without the lock.
	committed atomic.Uint64

	// snapshots holds the read timestamps of open transactions, ascending
	// and distinct, and counts how many transactions use each.
	snapshots []snapshot

	// active caches the read timestamps of snapshots, ascending, for
	// version trimming; activeStale says it must be rebuilt.
	active      []uint64
	activeStale bool

	// dirty holds the keys whose entries keep older versions (or a
	// tombstone) for the sake of open snapshots; they are trimmed again when
	// the oldest snapshot ends.
	dirty map[string]struct{}

	// shardScratch holds the shard of each write during a commit.
	shardScratch []uint16
}

type snapshot struct {
	readTs uint64
	n      int
}

// beginLocked registers a new snapshot at the last published commit and
// returns its read timestamp. Requires o.mu.
func (o *oracle) beginLocked() uint64 {
	ts := o.committed.Load()
	if n := len(o.snapshots); n > 0 && o.snapshots[n-1].readTs == ts {
		o.snapshots[n-1].n++
	} else {
		o.snapshots = append(o.snapshots, snapshot{readTs: ts, n: 1})
		o.activeStale = true
	}
	return ts
}

// endLocked unregisters one use of the snapshot at readTs. It reports whether
// the oldest snapshot in use advanced, which may make history collectable.
// Requires o.mu.
func (o *oracle) endLocked(readTs uint64) (oldestAdvanced bool) {
	i := sort.Search(len(o.snapshots), func(i int) bool { return o.snapshots[i].readTs >= readTs })
	if i == len(o.snapshots) || o.snapshots[i].readTs != readTs {
		panic("kvstore: ending an unregistered snapshot")
	}
	o.snapshots[i].n--
	if o.snapshots[i].n > 0 {
		return false
	}
	o.snapshots = append(o.snapshots[:i], o.snapshots[i+1:]...)
	o.activeStale = true
	if len(o.snapshots) == 0 {
		o.snapshots = nil // let a large backing array go
	}
	return i == 0
}

// activeLocked returns the read timestamps of open snapshots, ascending.
// The slice is valid until the set of snapshots changes. Requires o.mu.
func (o *oracle) activeLocked() []uint64 {
	if o.activeStale {
		o.active = o.active[:0]
		for _, s := range o.snapshots {
			o.active = append(o.active, s.readTs)
		}
		o.activeStale = false
	}
	return o.active
}

// markDirtyLocked records that key keeps history for open snapshots.
// Requires o.mu.
func (o *oracle) markDirtyLocked(key string) {
	if o.dirty == nil {
		o.dirty = make(map[string]struct{})
	}
	o.dirty[key] = struct{}{}
}
