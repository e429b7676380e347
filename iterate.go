package kvstore

import (
	"container/heap"
	"iter"
	"slices"
	"strings"
)

// Listing keys in byte order. Every shard keeps the keys of its table in an
// ordered set (internal/ordered), guarded by the shard's lock, built by the
// store's first listing (see ensureOrdered) and maintained from then on. A listing
// reads a snapshot: it walks each shard's set from the start of the range,
// takes small batches of the keys visible in the snapshot under the shard's
// read lock, and merges the 256 sorted streams with a heap. A key visible
// in a registered snapshot stays in its table (and so in the set) until the
// snapshot ends, so batches taken at different times agree.

// keyRange is the part of the key space a listing covers: keys with prefix,
// after `after` (when hasAfter), up to and including last (when hasLast).
// A transaction records the range it listed, up to where the listing
// stopped; its commit conflicts with any change to a key in it.
type keyRange struct {
	prefix   string
	after    string
	last     string
	hasAfter bool
	hasLast  bool
}

// start returns the smallest key the range may hold, and whether a key
// equal to it is excluded.
func (r *keyRange) start() (from string, skipEqual bool) {
	if r.hasAfter && r.after >= r.prefix {
		return r.after, true
	}
	return r.prefix, false
}

// below reports whether key sorts before the range's end, given that it is
// at or after its start.
func (r *keyRange) below(key string) bool {
	return strings.HasPrefix(key, r.prefix) && (!r.hasLast || key <= r.last)
}

// contains reports whether key lies in the range.
func (r *keyRange) contains(key string) bool {
	return r.below(key) && (!r.hasAfter || key > r.after)
}

// maxListBatch is the most keys a listing takes from one shard under one
// hold of its lock.
const maxListBatch = 256

// shardCursor streams the keys of one shard in a range, as visible in a
// snapshot, in batches.
type shardCursor struct {
	sh      *shard
	batch   []kvPair
	pos     int
	from    string // the next batch starts after from...
	skipEq  bool   // ...or at it, when false
	done    bool   // the shard has no more keys in the range
	nextCap int
}

type kvPair struct {
	key, val string
	exp      int64
}

// fill reads the next batch of visible keys. Requires nothing; takes the
// shard's read lock.
func (c *shardCursor) fill(s *Store, r *keyRange, readTs uint64, now int64) {
	c.batch, c.pos = c.batch[:0], 0
	sh := c.sh
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	scanned := 0
	c.done = true
	sh.t.keys.Ascend(c.from, func(k string) bool {
		if c.skipEq && k == c.from {
			return true
		}
		if !r.below(k) {
			return false
		}
		if len(c.batch) >= c.nextCap || scanned >= 4*maxListBatch {
			c.done = false
			return false
		}
		scanned++
		c.from, c.skipEq = k, true
		if e, found := sh.load(k, s.hash(k)); found {
			if v, exp, ok := e.readAt(readTs, now); ok {
				c.batch = append(c.batch, kvPair{k, v, exp})
			}
		}
		return true
	})
	c.nextCap = min(2*c.nextCap, maxListBatch)
}

// ensureOrdered builds the shard's ordered set of keys if no listing has
// yet. It holds the shard's lock meanwhile (a few milliseconds for 4,000
// keys), once in the store's life.
func (sh *shard) ensureOrdered() {
	sh.mu.RLock()
	built := sh.t.keys != nil
	sh.mu.RUnlock()
	if built {
		return
	}
	sh.lock()
	defer sh.unlock()
	if sh.t.keys == nil {
		sh.t.buildKeys()
	}
}

// cursorHeap orders shard cursors by their current key.
type cursorHeap []*shardCursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].batch[h[i].pos].key < h[j].batch[h[j].pos].key }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*shardCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// ascendSnapshot calls yield for every key in r visible in the snapshot at
// (readTs, now), in byte order, with its value, until yield returns false.
// The snapshot must be registered with the oracle for the whole call.
func (s *Store) ascendSnapshot(r *keyRange, readTs uint64, now int64, yield func(key, val string, exp int64) bool) {
	from, skipEq := r.start()
	cursors := make([]shardCursor, numShards)
	h := make(cursorHeap, 0, numShards)
	for i := range cursors {
		c := &cursors[i]
		*c = shardCursor{sh: &s.shards[i], from: from, skipEq: skipEq, nextCap: 4}
		c.sh.ensureOrdered()
		c.fill(s, r, readTs, now)
		if len(c.batch) > 0 {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		p := c.batch[c.pos]
		if !yield(p.key, p.val, p.exp) {
			return
		}
		c.pos++
		for c.pos == len(c.batch) && !c.done {
			c.fill(s, r, readTs, now)
		}
		if c.pos < len(c.batch) {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
}

// Ascend returns an iterator over the keys that start with prefix, in byte
// order, with their values, as one consistent snapshot of the store taken
// when the iteration starts. Use "" for every key. Breaking out of the loop
// ends the iteration; until then the snapshot keeps alive the versions it
// sees, as an open transaction does.
func (s *Store) Ascend(prefix string) iter.Seq2[string, string] {
	return s.AscendAfter(prefix, "")
}

// AscendAfter is Ascend restricted to the keys that sort after `after`
// (strictly), to list a prefix page by page: pass the last key of the
// previous page. An empty after starts at the beginning of the prefix.
func (s *Store) AscendAfter(prefix, after string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		t := s.Begin()
		t.readOnly = true
		defer t.discard()
		t.ascend(prefix, after, yield)
	}
}

// Ascend returns an iterator over the keys that start with prefix, in byte
// order, with their values, as this transaction sees them: its snapshot
// plus its own writes. Outside a read-only transaction (Store.View) the
// listing is a read of the range it covered, from the start of the prefix
// to where the loop stopped: the outermost Commit fails with ErrConflict if
// another commit created, changed or deleted a key in that range after the
// snapshot (no phantoms). After the transaction has ended, it yields
// nothing.
func (t *Txn) Ascend(prefix string) iter.Seq2[string, string] {
	return t.AscendAfter(prefix, "")
}

// AscendAfter is Ascend restricted to the keys that sort after `after`
// (strictly); an empty after starts at the beginning of the prefix.
func (t *Txn) AscendAfter(prefix, after string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if len(t.levels) == 0 {
			return
		}
		t.ascend(prefix, after, yield)
	}
}

// ascend lists the range, merging the snapshot with the transaction's own
// writes, and records the range it covered as a read.
func (t *Txn) ascend(prefix, after string, yield func(key, val string) bool) {
	r := keyRange{prefix: prefix, after: after, hasAfter: after != ""}
	own := t.ownWritesIn(&r)
	last, stopped := "", false
	emit := func(k, v string) bool {
		last = k
		if !yield(k, v) {
			stopped = true
			return false
		}
		return true
	}
	t.s.ascendSnapshot(&r, t.readTs, t.now, func(k, v string, exp int64) bool {
		for len(own) > 0 && own[0].key <= k {
			w := own[0]
			own = own[1:]
			if w.key == k {
				if w.val.del {
					return true // deleted by this transaction
				}
				return emit(w.key, w.val.val)
			}
			if !w.val.del && !emit(w.key, w.val.val) {
				return false
			}
		}
		if exp != 0 {
			t.sawExpiry(exp) // the listing read this version
		}
		return emit(k, v)
	})
	for ; !stopped && len(own) > 0; own = own[1:] {
		if w := own[0]; !w.val.del {
			emit(w.key, w.val.val)
		}
	}
	if !t.readOnly && len(t.levels) > 0 { // the loop body may have ended t
		rr := keyRange{prefix: t.arena.clone(prefix), after: t.arena.clone(after), hasAfter: r.hasAfter}
		if stopped {
			rr.last, rr.hasLast = t.arena.clone(last), true
		}
		t.ranges = append(t.ranges, rr)
	}
}

// ownWritesIn returns the transaction's latest write of each key in r,
// sorted by key.
func (t *Txn) ownWritesIn(r *keyRange) []item[write] {
	var own []item[write]
	seen := map[string]bool{}
	for i := len(t.levels) - 1; i >= 0; i-- {
		for _, it := range t.levels[i].items {
			if r.contains(it.key) && !seen[it.key] {
				seen[it.key] = true
				own = append(own, it)
			}
		}
	}
	slices.SortFunc(own, func(a, b item[write]) int { return strings.Compare(a.key, b.key) })
	return own
}

// rangeChangedSince reports whether a commit after readTs created, changed
// or deleted a key in r. Requires s.oracle.mu.
func (s *Store) rangeChangedSince(r *keyRange, readTs uint64) bool {
	from, skipEq := r.start()
	for i := range s.shards {
		sh := &s.shards[i]
		if sh.lastCommit <= readTs {
			continue
		}
		for _, c := range sh.collected {
			if c > readTs {
				// A tombstone newer than the snapshot was removed: it may
				// have been in the range.
				return true
			}
		}
		changed := false
		sh.mu.RLock()
		sh.t.keys.Ascend(from, func(k string) bool {
			if skipEq && k == from {
				return true
			}
			if !r.below(k) {
				return false
			}
			if j := sh.t.find(k, s.hash(k)); j >= 0 && sh.t.ts(j)&^tombstoneBit > readTs {
				changed = true
				return false
			}
			return true
		})
		sh.mu.RUnlock()
		if changed {
			return true
		}
	}
	return false
}
