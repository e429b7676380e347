package kvstore

import (
	"slices"
	"sort"
	"strings"
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

	// mem is the memory the tables and histories hold (see
	// Store.MemoryUsage). Changed under mu, so its cache line is the one
	// every commit holds anyway; atomic so that MemoryUsage can read it
	// without the lock.
	mem atomic.Int64

	// snapshots holds the read timestamps of open transactions, ascending
	// and distinct, and counts how many transactions use each.
	snapshots []snapshot

	// active caches the read timestamps of snapshots, ascending, for
	// version trimming; activeStale says it must be rebuilt.
	active      []uint64
	activeStale bool

	// shardScratch holds the shard of each write during a commit.
	shardScratch []uint16
}

// snapshot is the read timestamp of open transactions, and what it pins.
type snapshot struct {
	readTs uint64
	n      int // transactions reading at readTs
	// pinned holds the keys that keep a version whose owner this snapshot
	// is (see version.owner), or a tombstone kept for it: when it ends,
	// their history is trimmed again. The keys are copies.
	pinned map[string]struct{}
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

// endLocked unregisters one use of the snapshot at readTs. When that was
// the last use, it returns the keys the snapshot pinned: the caller trims
// them (see Store.sweep), after letting go of o.mu. Requires o.mu.
func (o *oracle) endLocked(readTs uint64) (pinned map[string]struct{}) {
	i, ok := o.search(readTs)
	if !ok {
		panic("kvstore: ending an unregistered snapshot")
	}
	o.snapshots[i].n--
	if o.snapshots[i].n > 0 {
		return nil
	}
	pinned = o.snapshots[i].pinned
	o.snapshots = slices.Delete(o.snapshots, i, i+1) // clears the freed element
	o.activeStale = true
	if len(o.snapshots) == 0 && cap(o.snapshots) > 64 {
		o.snapshots = nil // let a large backing array go; keep a small one
	}
	return pinned
}

// search returns the index of the snapshot at readTs, or where it would be.
func (o *oracle) search(readTs uint64) (int, bool) {
	i := sort.Search(len(o.snapshots), func(i int) bool { return o.snapshots[i].readTs >= readTs })
	return i, i < len(o.snapshots) && o.snapshots[i].readTs == readTs
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

// pinLocked records that key keeps a version owned by, or a tombstone kept
// for, the open snapshot at readTs. Requires o.mu.
func (o *oracle) pinLocked(key string, readTs uint64, mem *atomic.Int64) {
	i, ok := o.search(readTs)
	if !ok {
		panic("kvstore: pinning for a snapshot that is not open")
	}
	sn := &o.snapshots[i]
	if _, ok := sn.pinned[key]; ok {
		return
	}
	if sn.pinned == nil {
		sn.pinned = make(map[string]struct{})
	}
	sn.pinned[strings.Clone(key)] = struct{}{}
	mem.Add(pinnedBytes(key))
}

// unpinLocked forgets that key keeps a tombstone for the snapshot at readTs,
// if that snapshot is still open. Requires o.mu.
func (o *oracle) unpinLocked(key string, readTs uint64, mem *atomic.Int64) {
	if i, ok := o.search(readTs); ok {
		sn := &o.snapshots[i]
		if _, ok := sn.pinned[key]; !ok {
			return
		}
		delete(sn.pinned, key)
		mem.Add(-pinnedBytes(key))
		if len(sn.pinned) == 0 {
			sn.pinned = nil // a map keeps its size: let an emptied one go
		}
	}
}
