package kvstore

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/kvd-dev/kvstore/internal/ordered"
)

// table is an open-addressing hash table (linear probing, backward-shift
// deletion) that maps a key to its newest version. It replaces a Go map for
// memory and for readers:
//
//   - A key and its value are copied into one immutable record without
//     pointers (so the garbage collector never scans it), and a slot is 16
//     bytes: the record's address, and the commit timestamp packed with a
//     tombstone bit and eight bits of the key's hash. A map[string]entry
//     slot was 48.
//   - Readers need no lock: every field they read is loaded atomically, and
//     the shard's sequence counter tells them whether a writer changed the
//     table meanwhile (see shard). Writers hold the shard's lock and store
//     with atomics.
type table struct {
	slots []slot                 // power-of-two length, or nil while empty; the writers' view
	pub   atomic.Pointer[[]slot] // the same slots, published for readers
	n     int                    // occupied slots
	seed  maphash.Seed           // the store's, to rehash keys when slots move
	mem   *atomic.Int64          // the store's memory account, or nil

	// keys holds the key of every occupied slot in byte order, for
	// listings (see iterate.go), once the store's first listing built it
	// (nil until then: a store that never lists pays nothing for it).
	// insert and remove keep it in step with the slots; it owns copies of
	// the keys, because a slot's record is replaced on every write.
	keys *ordered.Set
}

// slot is one key's newest version. rec is nil in an empty slot.
type slot struct {
	rec  unsafe.Pointer // a record: see newRecord
	meta uint64         // commit timestamp | slotTombBit | tag<<slotTagShift
}

const (
	// maxTs is the largest commit timestamp a slot holds: 2^54-1, half a
	// century of ten million commits a second.
	maxTs = 1<<54 - 1
	// slotExpBit says that the slot's record ends with an expiry time
	// (see expiry.go).
	slotExpBit   = 1 << 54
	slotTombBit  = 1 << 55
	slotTagShift = 56

	// maxLoadNum/maxLoadDen is the load at which a table doubles.
	maxLoadNum, maxLoadDen = 3, 4
	// A table larger than minTableSize shrinks when its load falls below
	// 1/minLoadDen, to the smallest size whose load is at most 3/8. Between
	// the two thresholds it stays put, so keys that come and go around one
	// size do not make it resize back and forth.
	minLoadDen   = 8
	minTableSize = 8

	recordHeader = 8 // two uint32 lengths
)

// MaxKeyBytes and MaxValueBytes are the longest key and value the store
// holds (4 GiB - 1: a record stores each length in 32 bits). Longer ones are
// refused with ErrTooLarge.
const (
	MaxKeyBytes   = math.MaxUint32
	MaxValueBytes = math.MaxUint32
)

// checkRecordSize returns an error wrapping ErrTooLarge when a key of
// keyLen bytes or a value of valLen bytes does not fit a record.
func checkRecordSize(keyLen, valLen int) error {
	switch {
	case uint64(keyLen) > MaxKeyBytes:
		return fmt.Errorf("kvstore: key of %d bytes (at most %d): %w", keyLen, uint64(MaxKeyBytes), ErrTooLarge)
	case uint64(valLen) > MaxValueBytes:
		return fmt.Errorf("kvstore: value of %d bytes (at most %d): %w", valLen, uint64(MaxValueBytes), ErrTooLarge)
	}
	return nil
}

// newRecord returns a record holding key and val: the key's length and the
// value's as two uint32s, then the key's bytes, then the value's, then,
// only when exp is not 0, the expiry time as 8 little-endian bytes (the
// slot's slotExpBit says so). Records are never modified once made, so a
// reader that loads a record's address sees all of it.
func newRecord(key, val string, exp int64) unsafe.Pointer {
	n := recordHeader + len(key) + len(val)
	size := n
	if exp != 0 {
		size += 8
	}
	rec := make([]byte, size)
	*(*uint32)(unsafe.Pointer(&rec[0])) = uint32(len(key))
	*(*uint32)(unsafe.Pointer(&rec[4])) = uint32(len(val))
	copy(rec[recordHeader:], key)
	copy(rec[recordHeader+len(key):], val)
	if exp != 0 {
		binary.LittleEndian.PutUint64(rec[n:], uint64(exp))
	}
	return unsafe.Pointer(&rec[0])
}

// recExpiry returns the expiry time stored at the end of a record whose
// slot has slotExpBit.
func recExpiry(rec unsafe.Pointer) int64 {
	n := recordHeader + recKeyLen(rec) + int(*(*uint32)(unsafe.Add(rec, 4)))
	return int64(binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(rec, n)), 8)))
}

// slotExpiry returns the expiry time of a slot's record, or 0.
func slotExpiry(rec unsafe.Pointer, meta uint64) int64 {
	if meta&slotExpBit == 0 {
		return 0
	}
	return recExpiry(rec)
}

func recKeyLen(rec unsafe.Pointer) int { return int(*(*uint32)(rec)) }

func recKey(rec unsafe.Pointer) string {
	n := recKeyLen(rec)
	if n == 0 {
		return "" // the address after the header may be past the record
	}
	return unsafe.String((*byte)(unsafe.Add(rec, recordHeader)), n)
}

func recValue(rec unsafe.Pointer) string {
	n := int(*(*uint32)(unsafe.Add(rec, 4)))
	if n == 0 {
		return "" // the address after the key may be past the record
	}
	return unsafe.String((*byte)(unsafe.Add(rec, recordHeader+recKeyLen(rec))), n)
}

// load returns the slot's record and meta, each read atomically.
func (sl *slot) load() (unsafe.Pointer, uint64) {
	return atomic.LoadPointer(&sl.rec), atomic.LoadUint64(&sl.meta)
}

// packMeta packs a commit timestamp (with tombstoneBit for a deletion), the
// key's hash and whether the record holds an expiry time into a slot's meta
// word.
func packMeta(ts, h uint64, hasExp bool) uint64 {
	meta := ts&maxTs | tag(h)<<slotTagShift
	if hasExp {
		meta |= slotExpBit
	}
	if ts&tombstoneBit != 0 {
		meta |= slotTombBit
	}
	return meta
}

// metaTs returns the commit timestamp in meta, with tombstoneBit set for a
// deletion, as entry.ts holds it.
func metaTs(meta uint64) uint64 {
	ts := meta & maxTs
	if meta&slotTombBit != 0 {
		ts |= tombstoneBit
	}
	return ts
}

// tag is the part of a key's hash kept in its slot. The low bits of the hash
// pick the shard and the slot, so the tag comes from the top.
func tag(h uint64) uint64 { return h >> slotTagShift }

// home returns the slot where the probe for hash h starts in a table of
// size slots.
func home(h uint64, size int) int {
	return int(h>>8) & (size - 1) // the low byte picks the shard
}

// probe returns the index of key in slots, and the slot's record and meta,
// or -1. It reads slots atomically, so readers may call it without the lock
// (they must then check the shard's sequence counter).
func probe(slots []slot, key string, h uint64) (int, unsafe.Pointer, uint64) {
	if len(slots) == 0 {
		return -1, nil, 0
	}
	mask := len(slots) - 1
	want := tag(h)
	for i := home(h, len(slots)); ; i = (i + 1) & mask {
		rec, meta := slots[i].load()
		if rec == nil {
			return -1, nil, 0
		}
		if meta>>slotTagShift == want && recKeyLen(rec) == len(key) && recKey(rec) == key {
			return i, rec, meta
		}
	}
}

// lookup is probe on the published slots, for readers without the lock.
func (t *table) lookup(key string, h uint64) (unsafe.Pointer, uint64, bool) {
	p := t.pub.Load()
	if p == nil {
		return nil, 0, false
	}
	i, rec, meta := probe(*p, key, h)
	return rec, meta, i >= 0
}

// find returns the index of key's slot, or -1. Requires the shard's lock.
func (t *table) find(key string, h uint64) int {
	i, _, _ := probe(t.slots, key, h)
	return i
}

// key, value and ts read slot i. Require the shard's lock.
func (t *table) key(i int) string   { return recKey(t.slots[i].rec) }
func (t *table) value(i int) string { return recValue(t.slots[i].rec) }
func (t *table) ts(i int) uint64    { return metaTs(t.slots[i].meta) }
func (t *table) exp(i int) int64    { return slotExpiry(t.slots[i].rec, t.slots[i].meta) }

// set makes slot i hold key and val, committed at ts (with tombstoneBit for
// a deletion) and expiring at exp (0: never). Requires the shard's lock,
// held as a writer.
func (t *table) set(i int, key, val string, h, ts uint64, exp int64) {
	t.setRecord(i, newRecord(key, val, exp), h, ts, exp != 0)
}

// setRecord is set with the record made (see newRecord); hasExp says
// whether it ends with an expiry time.
func (t *table) setRecord(i int, rec unsafe.Pointer, h, ts uint64, hasExp bool) {
	atomic.StorePointer(&t.slots[i].rec, rec)
	atomic.StoreUint64(&t.slots[i].meta, packMeta(ts, h, hasExp))
}

// insert adds key, which must not be in the table, and returns the index of
// its slot for the caller to set. Requires the shard's lock, as a writer.
func (t *table) insert(key string, h uint64) int {
	if (t.n+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		t.grow()
	}
	mask := len(t.slots) - 1
	i := home(h, len(t.slots))
	for t.slots[i].rec != nil {
		i = (i + 1) & mask
	}
	t.n++
	if t.keys != nil {
		t.keys.Insert(strings.Clone(key))
		if t.mem != nil {
			t.mem.Add(orderedKeyBytes(len(key)))
		}
	}
	return i
}

// growthBytes is how much the slot arrays grow if one more key is
// inserted.
func (t *table) growthBytes() int64 {
	if (t.n+1)*maxLoadDen > len(t.slots)*maxLoadNum {
		return int64(max(minTableSize, 2*len(t.slots))-len(t.slots)) * slotBytes
	}
	return 0
}

// buildKeys builds the ordered set of the table's keys. Requires the
// shard's lock, as a writer.
func (t *table) buildKeys() {
	keys := make([]string, 0, t.n)
	for _, sl := range t.slots {
		if sl.rec != nil {
			keys = append(keys, recKey(sl.rec))
		}
	}
	slices.Sort(keys)
	t.keys = new(ordered.Set)
	var n int64
	for _, k := range keys {
		t.keys.Insert(strings.Clone(k)) // in order: fills every block
		n += orderedKeyBytes(len(k))
	}
	if t.mem != nil {
		t.mem.Add(n)
	}
}

// grow doubles the table.
func (t *table) grow() { t.resize(max(minTableSize, 2*len(t.slots))) }

// shrinkIfSparse halves the table, as often as it takes, once the load has
// fallen below 1/minLoadDen.
func (t *table) shrinkIfSparse() {
	if len(t.slots) <= minTableSize || t.n*minLoadDen >= len(t.slots) {
		return
	}
	size := len(t.slots)
	for size > minTableSize && t.n*8 <= 3*(size/2) {
		size /= 2
	}
	t.resize(size)
}

// resize moves every key into a new array of size slots, rehashing each,
// and publishes it. Readers still probing the old slots see them unchanged,
// and the shard's sequence counter sends them to the new ones.
func (t *table) resize(size int) {
	slots := make([]slot, size)
	mask := len(slots) - 1
	for _, sl := range t.slots {
		if sl.rec == nil {
			continue
		}
		i := home(maphash.String(t.seed, recKey(sl.rec)), len(slots))
		for slots[i].rec != nil {
			i = (i + 1) & mask
		}
		slots[i] = sl // not yet visible to readers
	}
	if t.mem != nil {
		t.mem.Add(int64(len(slots)-len(t.slots)) * slotBytes)
	}
	t.slots = slots
	t.pub.Store(&slots)
}

// remove empties slot i and shifts back the slots after it that probed past
// it, so that every key stays reachable from its home slot, then shrinks a
// sparse table. Requires the shard's lock, as a writer.
func (t *table) remove(i int) {
	if k := recKey(t.slots[i].rec); t.keys.Delete(k) && t.mem != nil {
		t.mem.Add(-orderedKeyBytes(len(k)))
	}
	mask := len(t.slots) - 1
	for {
		t.store(i, slot{})
		j := i
		for {
			j = (j + 1) & mask
			if t.slots[j].rec == nil {
				t.n--
				t.shrinkIfSparse()
				return
			}
			// The key at j may move to i if its home is not in (i, j],
			// cyclically.
			k := home(maphash.String(t.seed, recKey(t.slots[j].rec)), len(t.slots))
			if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
				t.store(i, t.slots[j])
				i = j
				break
			}
		}
	}
}

// store writes sl into slot i with atomics.
func (t *table) store(i int, sl slot) {
	atomic.StorePointer(&t.slots[i].rec, sl.rec)
	atomic.StoreUint64(&t.slots[i].meta, sl.meta)
}
