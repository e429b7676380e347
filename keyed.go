package kvstore

import "unsafe"

// smallKeyed is how many entries a keyed collection holds before it builds a
// map index. Most transactions touch a handful of keys, and scanning a few
// strings beats hashing them and allocating a map.
const smallKeyed = 16

// keyed is an insertion-ordered collection of values by key: a slice, with a
// map index once it grows past smallKeyed entries. The zero value is empty
// and ready to use.
type keyed[V any] struct {
	items []item[V]
	index map[string]int
}

type item[V any] struct {
	key string
	val V
}

func (k *keyed[V]) len() int { return len(k.items) }

// find returns the position of key, or -1.
func (k *keyed[V]) find(key string) int {
	if k.index != nil {
		if i, ok := k.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range k.items {
		if k.items[i].key == key {
			return i
		}
	}
	return -1
}

// set stores v under key, replacing any earlier value.
func (k *keyed[V]) set(key string, v V) {
	if i := k.find(key); i >= 0 {
		k.items[i].val = v
		return
	}
	if k.items == nil {
		k.items = make([]item[V], 0, 8)
	}
	k.items = append(k.items, item[V]{key, v})
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
		a.buf = make([]byte, 0, max(64, 2*cap(a.buf), len(key)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, key...)
	return unsafe.String(&a.buf[start], len(key))
}
