package kvstore

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// shard is one part of the key space with its own lock: a table of newest
// versions and, for the few keys that keep older versions for open
// snapshots, their history. Padded so that neighbouring shards do not share
// a cache line.
//
// Store.Get reads a shard without taking its lock, like a seqlock: a writer
// makes seq odd when it takes the lock and even again when it lets go, so a
// reader that saw the same even seq before and after its probe knows no
// writer touched the table in between; otherwise it probes again. Readers
// thus write no shared memory, and reads scale across cores. Snapshot reads
// of keys changed since the snapshot walk the history, under the read
// lock.
type shard struct {
	mu  sync.RWMutex
	seq atomic.Uint64
	t   table
	// hist holds the older versions of keys that keep history, newest first.
	hist map[string]*version
	// lastCommit is the timestamp of the newest commit that wrote to this
	// shard. Written and read under the oracle's mutex: a commit whose read
	// keys all lie in shards not written since its snapshot skips looking
	// them up.
	lastCommit uint64
	_          [24]byte
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

// get returns the newest value of key, whose hash is h, without the lock.
func (sh *shard) get(key string, h uint64) (value string, ok bool) {
	value, ok, _ = sh.getAt(key, h, maxTs)
	return value, ok
}

// getAt returns the value of key, whose hash is h, in the snapshot at
// readTs, without the lock, when the newest version answers: the key has
// no version at all (history is only kept for keys in the table), or its
// newest one is at or before readTs. Otherwise known is false and the
// caller must read the history under the lock.
func (sh *shard) getAt(key string, h, readTs uint64) (value string, ok, known bool) {
	for spins := 0; ; spins++ {
		if seq := sh.seq.Load(); seq&1 == 0 {
			rec, meta, found := sh.t.lookup(key, h)
			if sh.seq.Load() == seq {
				switch {
				case !found:
					return "", false, true
				case meta&maxTs > readTs:
					return "", false, false
				case meta&slotTombBit != 0:
					return "", false, true
				}
				return recValue(rec), true, true
			}
		}
		if spins >= 4 {
			runtime.Gosched() // a writer is busy; let it finish
		}
	}
}

// entryAt returns the versions of the key in slot i. Requires sh.mu.
func (sh *shard) entryAt(i int) entry {
	e := entry{val: sh.t.value(i), ts: sh.t.ts(i)}
	if len(sh.hist) > 0 {
		e.older = sh.hist[sh.t.key(i)]
	}
	return e
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

// setHistory records the older versions of key; nil forgets them. key must
// be a view of the key's record (see Store.keepHistory). Requires sh.mu.
func (sh *shard) setHistory(key string, older *version) {
	switch {
	case older != nil:
		if sh.hist == nil {
			sh.hist = make(map[string]*version)
		}
		sh.hist[key] = older
	case len(sh.hist) > 0:
		delete(sh.hist, key)
		if len(sh.hist) == 0 {
			sh.hist = nil // a map keeps its size: let an emptied one go
		}
	}
}
