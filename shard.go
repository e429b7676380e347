package kvstore

import "sync"

// shard is one part of the key space with its own lock: a table of newest
// versions and, for the few keys that keep older versions for open
// snapshots, their history. Padded so that neighbouring shards' locks do not
// share a cache line.
type shard struct {
	mu sync.RWMutex
	t  table
	// hist holds the older versions of keys that keep history, newest first.
	hist map[string]*version
	// lastCommit is the timestamp of the newest commit that wrote to this
	// shard. Written and read under the oracle's mutex: a commit whose read
	// keys all lie in shards not written since its snapshot skips looking
	// them up.
	lastCommit uint64
	_          [48]byte
}

// entryAt returns the versions of the key in slot i. Requires sh.mu.
func (sh *shard) entryAt(i int) entry {
	sl := &sh.t.slots[i]
	e := entry{val: sl.value(), ts: sl.ts()}
	if len(sh.hist) > 0 {
		e.older = sh.hist[sl.key()]
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
	return i >= 0 && sh.t.slots[i].meta&slotTombBit == 0
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
	}
}
