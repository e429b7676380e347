package kvstore

import (
	"sync"
	"unsafe"
)

// smallKeyed is how many entries a keyed collection holds before it builds a
// map index. Most transactions touch a handful of keys, and scanning a few
// hashes beats allocating and filling a map.
const smallKeyed = 16

// keyed is an insertion-ordered collection of values by key, each stored with
// the key's hash (the same hash that picks its shard, so it is computed once
// per operation): a slice, with a map index once it grows past smallKeyed
// entries. The zero value is empty and ready to use.
type keyed[V any] struct {
	items []item[V]
	index map[string]int
}

type item[V any] struct {
	key  string
	hash uint64
	val  V
}

func (k *keyed[V]) len() int { return len(k.items) }

// find returns the position of key, whose hash is h, or -1.
func (k *keyed[V]) find(key string, h uint64) int {
	if k.index != nil {
		if i, ok := k.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range k.items {
		if k.items[i].hash == h && k.items[i].key == key {
			return i
		}
	}
	return -1
}

// set stores v under key, whose hash is h, replacing any earlier value.
func (k *keyed[V]) set(key string, h uint64, v V) {
	if i := k.find(key, h); i >= 0 {
		k.items[i].val = v
		return
	}
	k.items = append(k.items, item[V]{key, h, v})
	switch n := len(k.items); {
	case k.index != nil:
		k.index[key] = n - 1
	case n > smallKeyed:
		k.index = make(map[string]int, 2*n)
		for i := range k.items {
			k.index[k.items[i].key] = i
		}
	}
}

// keyArena copies keys into shared blocks of memory, so that recording many
// small keys costs a few allocations rather than one each.
type keyArena struct {
	buf []byte
}

// clone returns a copy of key that does not share memory with it.
func (a *keyArena) clone(key string) string {
	if len(key) == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < len(key) {
		// Strings already handed out keep the old block alive.
		a.buf = make([]byte, 0, max(256, 2*cap(a.buf), len(key)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, key...)
	return unsafe.String(&a.buf[start], len(key))
}

// txnBuffers is the memory a transaction's outermost write set, read set and
// key arena start with. It is recycled through txnBufferPool when the
// transaction ends, so that a steady stream of small transactions allocates
// little. Only the Txn that took a txnBuffers uses it, and it drops every
// reference into it before putting it back.
type txnBuffers struct {
	writes [smallKeyed]item[write]
	reads  [smallKeyed]item[struct{}]
	arena  [240]byte // with the rest, 1408 bytes: a size class
	// mem is what the transaction's buffers hold (see Store.MemoryUsage);
	// reserved is the part of the store's account taken for them, at least
	// mem. Kept here rather than in Txn, which stays in a smaller size
	// class.
	mem, reserved int64
}

var txnBufferPool = sync.Pool{New: func() any { return new(txnBuffers) }}

// attach makes t's outermost level, read set and arena use b.
func (b *txnBuffers) attach(t *Txn) {
	t.bufs = b
	b.mem, b.reserved = 0, 0
	t.levels[0].items = b.writes[:0]
	t.reads.items = b.reads[:0]
	t.arena.buf = b.arena[:0]
}

// recycle clears the strings b still refers to and returns it to the pool.
func (b *txnBuffers) recycle() {
	clear(b.writes[:])
	clear(b.reads[:])
	txnBufferPool.Put(b)
}
