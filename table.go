package kvstore

import (
	"hash/maphash"
	"unsafe"
)

// table is an open-addressing hash table (linear probing, backward-shift
// deletion) that maps a key to its newest version. It replaces a Go map for
// memory: a key and its value are copied into one allocation without
// pointers (so the garbage collector never scans it), and a slot is 24
// bytes, against 48 for a map[string]entry slot. A table is guarded by its
// shard's lock.
type table struct {
	slots []slot       // power-of-two length, or nil while empty
	n     int          // occupied slots
	seed  maphash.Seed // the store's, to rehash keys when slots move
}

// slot is one key's newest version: rec points at the key's bytes followed by
// the value's; meta packs the commit timestamp, the tombstone flag and eight
// bits of the key's hash, which let a probe skip most non-matching slots
// without reading rec.
type slot struct {
	rec  unsafe.Pointer // nil: empty
	klen uint32
	vlen uint32
	meta uint64
}

const (
	// maxTs is the largest commit timestamp a slot holds: 2^55-1, a
	// century of ten million commits a second.
	maxTs        = 1<<55 - 1
	slotTombBit  = 1 << 55
	slotTagShift = 56

	// maxLoadNum/maxLoadDen is the load at which a table doubles.
	maxLoadNum, maxLoadDen = 3, 4
	minTableSize           = 8
)

// tag is the part of a key's hash kept in its slot. The low bits of the hash
// pick the shard and the slot, so the tag comes from the top.
func tag(h uint64) uint64 { return h >> slotTagShift }

func (sl *slot) key() string { return unsafe.String((*byte)(sl.rec), sl.klen) }

func (sl *slot) value() string {
	if sl.vlen == 0 {
		return "" // rec+klen would point past the end of the record
	}
	return unsafe.String((*byte)(unsafe.Add(sl.rec, sl.klen)), sl.vlen)
}

// ts returns the slot's commit timestamp, with tombstoneBit set for a
// deletion, as entry.ts holds it.
func (sl *slot) ts() uint64 {
	ts := sl.meta & maxTs
	if sl.meta&slotTombBit != 0 {
		ts |= tombstoneBit
	}
	return ts
}

// set points sl at a new record holding key and val, committed at ts (with
// tombstoneBit for a deletion).
func (sl *slot) set(key, val string, h, ts uint64) {
	rec := make([]byte, len(key)+len(val))
	copy(rec, key)
	copy(rec[len(key):], val)
	meta := ts&maxTs | tag(h)<<slotTagShift
	if ts&tombstoneBit != 0 {
		meta |= slotTombBit
	}
	*sl = slot{rec: unsafe.Pointer(unsafe.SliceData(rec)), klen: uint32(len(key)), vlen: uint32(len(val)), meta: meta}
	if len(rec) == 0 {
		sl.rec = unsafe.Pointer(&zeroRecord)
	}
}

// zeroRecord stands for the record of the empty key with an empty value,
// which has no bytes but must not be a nil (empty-slot) pointer.
var zeroRecord byte

// home returns the slot where the probe for hash h starts.
func (t *table) home(h uint64) int {
	return int(h>>8) & (len(t.slots) - 1) // the low byte picks the shard
}

// find returns the index of key's slot, or -1.
func (t *table) find(key string, h uint64) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	want := tag(h)
	for i := t.home(h); ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.rec == nil {
			return -1
		}
		if sl.meta>>slotTagShift == want && int(sl.klen) == len(key) && sl.key() == key {
			return i
		}
	}
}

// insert adds key, which must not be in the table, and returns its slot for
// the caller to set.
func (t *table) insert(key string, h uint64) *slot {
	if (t.n+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		t.grow()
	}
	mask := len(t.slots) - 1
	i := t.home(h)
	for t.slots[i].rec != nil {
		i = (i + 1) & mask
	}
	t.n++
	return &t.slots[i]
}

// grow doubles the table, rehashing every key with hash.
func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, max(minTableSize, 2*len(old)))
	mask := len(t.slots) - 1
	for _, sl := range old {
		if sl.rec == nil {
			continue
		}
		i := t.home(maphash.String(t.seed, sl.key()))
		for t.slots[i].rec != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = sl
	}
}

// remove empties slot i and shifts back the slots after it that probed past
// it, so that every key stays reachable from its home slot.
func (t *table) remove(i int) {
	mask := len(t.slots) - 1
	for {
		t.slots[i] = slot{}
		j := i
		for {
			j = (j + 1) & mask
			if t.slots[j].rec == nil {
				t.n--
				return
			}
			// The key at j may move to i if its home is not in (i, j],
			// cyclically.
			k := t.home(maphash.String(t.seed, t.slots[j].key()))
			if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
				t.slots[i] = t.slots[j]
				i = j
				break
			}
		}
	}
}
