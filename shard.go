package kvstore

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// shard is one part of the key space with its own lock: a table of newest
// versions and, for the few keys that keep older versions (or a tombstone)
// for open snapshots, their history. Padded so that neighbouring shards do
// not share a cache line.
//
// Store.Get reads a shard without taking its lock, like a seqlock: a writer
// makes seq odd when it takes the lock and even again when it lets go, so a
// reader that saw the same even seq before and after its probe knows no
// writer touched the table in between; otherwise it probes again, a few
// times, and then waits for the read lock (so that a stream of writers
// cannot keep a reader spinning). Readers thus write no shared memory in the
// common case, and reads scale across cores. Snapshot reads of keys changed
// since the snapshot walk the history, under the read lock.
type shard struct {
	mu  sync.RWMutex
	seq atomic.Uint64
	t   table
	// hist holds the history of the keys that keep one, by key (a copy,
	// not a view of a record: see setHistory).
	hist map[string]history
	// keptTombs counts the entries of hist that are lone tombstones.
	keptTombs int
	// lastCommit is the timestamp of the newest commit that wrote to this
	// shard. Written and read under the oracle's mutex: a commit whose read
	// keys all lie in shards not written since its snapshot skips looking
	// them up.
	lastCommit uint64
	// collected holds, for each of collectBuckets groups of keys (by hash),
	// the newest commit timestamp of a tombstone removed from the table
	// while an older snapshot was open. Validation counts a key it does not
	// find as changed after a snapshot older than its group's mark: the
	// tombstone it would have found may have been removed. Written and read
	// under the oracle's mutex.
	collected [collectBuckets]uint64
	// lastDelete is the timestamp of the newest commit that deleted a key
	// of this shard (a tombstone, removed or not): a key missing from the
	// table is missing as of that commit at the latest (see getDep).
	// Written under the shard's lock; read without it, like the table.
	lastDelete atomic.Uint64 // also pads to a multiple of 64 bytes (see TestShardFillsCacheLines)
}

// history is what a key keeps for open snapshots besides its newest version:
// older versions, newest first; or, when older is nil, nothing but the
// newest version, a tombstone, kept because the snapshot at keptFor (and
// perhaps older ones) predates it, and a transaction on that snapshot that
// read the key as missing must see at commit that it changed.
type history struct {
	older   *version
	keptFor uint64
}

const (
	// collectBuckets is the number of groups of keys per shard with a mark
	// of their own for removed tombstones: more groups, fewer false
	// conflicts, for 8 bytes each.
	collectBuckets = 8
	// maxKeptTombstones is how many lone tombstones a shard keeps for open
	// snapshots. Past it, deletions remove the key at once and mark its
	// group (see shard.collected): memory stays bounded whatever the
	// deletions while a transaction stays open, at the price of possible
	// false conflicts for transactions that read missing keys in that group.
	maxKeptTombstones = 64
	// optimisticReads is how many times a lock-free read probes a shard
	// that writers keep changing before it takes the read lock.
	optimisticReads = 4
)

// collectBucket returns the group of collected of the key whose hash is h.
// The low bits of h pick the shard and the slot, the top ones the tag.
func collectBucket(h uint64) int { return int(h>>40) % collectBuckets }

// markCollected records that the tombstone of the key whose hash is h,
// committed at ts, was removed while an older snapshot was open. Requires
// the oracle's mutex.
func (sh *shard) markCollected(h, ts uint64) {
	b := &sh.collected[collectBucket(h)]
	*b = max(*b, ts)
}

// lock takes the shard's lock as a writer and tells lock-free readers.
func (sh *shard) lock() {
	sh.mu.Lock()
	sh.seq.Add(1)
}

// unlock ends a write.
func (sh *shard) unlock() {
	sh.seq.Add(1)
	sh.mu.Unlock()
}

// get returns the newest value of key, whose hash is h, and its expiry time
// (0 for none), without the lock. The caller checks the expiry.
func (sh *shard) get(key string, h uint64) (value string, exp int64, ok bool) {
	value, exp, ok, _ = sh.getAt(key, h, maxTs)
	return value, exp, ok
}

// getDep is get that also returns the commit timestamp that a response
// showing the answer reveals (SyncAlways waits for it to be synced before
// sending such a response): the newest version's commit when the key has
// a slot (a value, expired or not, or a tombstone), and otherwise the
// shard's newest deletion, which may be what removed the key.
func (sh *shard) getDep(key string, h uint64) (value string, exp int64, dep uint64, ok bool) {
	for range optimisticReads {
		if seq := sh.seq.Load(); seq&1 == 0 {
			rec, meta, found := sh.t.lookup(key, h)
			del := sh.lastDelete.Load()
			if sh.seq.Load() == seq {
				return answerDep(rec, meta, found, del)
			}
		}
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, rec, meta := probe(sh.t.slots, key, h)
	return answerDep(rec, meta, i >= 0, sh.lastDelete.Load())
}

// answerDep is getDep's answer for a probe that found the slot (rec,
// meta) or nothing, in a shard whose newest deletion is at lastDelete.
func answerDep(rec unsafe.Pointer, meta uint64, found bool, lastDelete uint64) (value string, exp int64, dep uint64, ok bool) {
	switch {
	case !found:
		return "", 0, lastDelete, false
	case meta&slotTombBit != 0:
		return "", 0, meta & maxTs, false
	}
	return recValue(rec), slotExpiry(rec, meta), meta & maxTs, true
}

// getAt returns the value of key, whose hash is h, in the snapshot at
// readTs, and its expiry time (0 for none; the caller checks it), when the
// newest version answers: the key has no version at all
// (history is only kept for keys in the table), or its newest one is at or
// before readTs. Otherwise known is false and the caller must read the
// history under the lock. It takes no lock unless writers keep changing the
// shard during optimisticReads probes.
func (sh *shard) getAt(key string, h, readTs uint64) (value string, exp int64, ok, known bool) {
	for range optimisticReads {
		if seq := sh.seq.Load(); seq&1 == 0 {
			rec, meta, found := sh.t.lookup(key, h)
			if sh.seq.Load() == seq {
				return newestAt(rec, meta, found, readTs)
			}
		}
	}
	return sh.getAtLocked(key, h, readTs)
}

// getAtLocked is getAt under the read lock.
func (sh *shard) getAtLocked(key string, h, readTs uint64) (value string, exp int64, ok, known bool) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, rec, meta := probe(sh.t.slots, key, h)
	return newestAt(rec, meta, i >= 0, readTs)
}

// newestAt answers getAt from the key's slot.
func newestAt(rec unsafe.Pointer, meta uint64, found bool, readTs uint64) (value string, exp int64, ok, known bool) {
	switch {
	case !found:
		return "", 0, false, true
	case meta&maxTs > readTs:
		return "", 0, false, false
	case meta&slotTombBit != 0:
		return "", 0, false, true
	}
	return recValue(rec), slotExpiry(rec, meta), true, true
}

// entryAt returns the versions of the key in slot i. Requires sh.mu.
func (sh *shard) entryAt(i int) entry {
	e := entry{val: sh.t.value(i), ts: sh.t.ts(i), exp: sh.t.exp(i)}
	if len(sh.hist) > 0 {
		e.older = sh.hist[sh.t.key(i)].older
	}
	return e
}

// accountedEntryAt returns the versions of the key in slot i and their
// footprint. Requires sh.mu.
func (sh *shard) accountedEntryAt(i int) (entry, int64) {
	e := sh.entryAt(i)
	_, hasHistory := sh.historyOf(sh.t.key(i))
	return e, footprint(len(sh.t.key(i)), e, hasHistory)
}

// historyOf returns the history kept for key, if any. Requires sh.mu.
func (sh *shard) historyOf(key string) (history, bool) {
	if len(sh.hist) == 0 {
		return history{}, false
	}
	hs, ok := sh.hist[key]
	return hs, ok
}

// load returns the versions of key, whose hash is h. Requires sh.mu.
func (sh *shard) load(key string, h uint64) (entry, bool) {
	i := sh.t.find(key, h)
	if i < 0 {
		return entry{}, false
	}
	return sh.entryAt(i), true
}

// holdsValue reports whether the newest version of key holds a value.
// Requires sh.mu.
func (sh *shard) holdsValue(key string, h uint64) bool {
	i := sh.t.find(key, h)
	return i >= 0 && sh.t.ts(i)&tombstoneBit == 0
}

// valueExpiry reports whether the newest version of key holds a value, and
// its expiry time (0: none), for the caller to compare with the clock
// only when there is one. Requires sh.mu.
func (sh *shard) valueExpiry(key string, h uint64) (holds bool, exp int64) {
	i := sh.t.find(key, h)
	if i < 0 || sh.t.ts(i)&tombstoneBit != 0 {
		return false, 0
	}
	return true, sh.t.exp(i)
}

// setHistory records what key keeps besides its newest version; ok false
// forgets it. A new entry's key is a copy: a view of the key's record would
// keep that record, value and all, alive after the key changed. Requires
// sh.mu as a writer.
func (sh *shard) setHistory(key string, hs history, ok bool) {
	old, had := sh.historyOf(key)
	if had && old.older == nil {
		sh.keptTombs--
	}
	switch {
	case ok:
		if hs.older == nil {
			sh.keptTombs++
		}
		if sh.hist == nil {
			sh.hist = make(map[string]history)
		}
		if !had {
			key = strings.Clone(key)
		}
		sh.hist[key] = hs
	case had:
		delete(sh.hist, key)
		if len(sh.hist) == 0 {
			sh.hist = nil // a map keeps its size: let an emptied one go
		}
	}
}
