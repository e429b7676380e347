package kvstore

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestTableAgainstMap runs random inserts, overwrites and removals on a
// table and a Go map, and checks after every step that the table holds
// exactly the map's keys and values: this exercises probing past
// collisions, growth and backward-shift deletion.
func TestTableAgainstMap(t *testing.T) {
	seed := maphash.MakeSeed()
	for round := range 20 {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		tb := table{seed: seed}
		want := map[string]string{}
		keys := make([]string, 50+round*20)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
		}
		for step := range 3000 {
			k := keys[rng.IntN(len(keys))]
			h := maphash.String(seed, k)
			i := tb.find(k, h)
			if _, ok := want[k]; ok != (i >= 0) {
				t.Fatalf("round %d step %d: find(%s) = %d, map has it: %v", round, step, k, i, ok)
			}
			switch {
			case i >= 0 && rng.IntN(2) == 0:
				tb.remove(i)
				delete(want, k)
			case i >= 0:
				v := fmt.Sprint(step)
				tb.set(i, k, v, h, uint64(step), int64(step%3))
				want[k] = v
			default:
				v := fmt.Sprint(step)
				tb.set(tb.insert(k, h), k, v, h, uint64(step), int64(step%3))
				want[k] = v
			}
			if tb.n != len(want) {
				t.Fatalf("round %d step %d: table counts %d keys, map has %d", round, step, tb.n, len(want))
			}
			for wk, wv := range want {
				j := tb.find(wk, maphash.String(seed, wk))
				if j < 0 || tb.value(j) != wv || tb.key(j) != wk {
					t.Fatalf("round %d step %d: lost %s=%s (slot %d)", round, step, wk, wv, j)
				}
			}
		}
	}
}

func TestTableEmptyKeyAndValue(t *testing.T) {
	s := New()
	s.Put("", "")
	s.Put("k", "")
	for _, k := range []string{"", "k"} {
		if v, ok := s.Get(k); !ok || v != "" {
			t.Errorf("Get(%q) = %q, %v", k, v, ok)
		}
	}
	if existed, _ := s.Delete(""); !existed || s.Len() != 1 {
		t.Errorf("Delete(\"\") failed or Len = %d", s.Len())
	}
}

func TestTimestampFitsSlot(t *testing.T) {
	for _, ts := range []uint64{1, maxTs, maxTs | tombstoneBit} {
		for _, hasExp := range []bool{false, true} {
			meta := packMeta(ts, 0xAB<<56, hasExp)
			if metaTs(meta) != ts || meta>>slotTagShift != 0xAB || (meta&slotExpBit != 0) != hasExp {
				t.Errorf("slot holding ts %#x (expiry %v) reads back %#x, tag %#x, meta %#x", ts, hasExp, metaTs(meta), meta>>slotTagShift, meta)
			}
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, kv := range [][2]string{{"", ""}, {"k", ""}, {"", "v"}, {"key", "value with spaces"}} {
		for _, exp := range []int64{0, 1, -5, 1<<63 - 1} {
			rec := newRecord(kv[0], kv[1], exp)
			if recKey(rec) != kv[0] || recValue(rec) != kv[1] {
				t.Errorf("record of %q, %q reads back %q, %q", kv[0], kv[1], recKey(rec), recValue(rec))
			}
			if got := slotExpiry(rec, packMeta(1, 0, exp != 0)); got != exp {
				t.Errorf("record of %q, %q expiring at %d reads back expiry %d", kv[0], kv[1], exp, got)
			}
		}
	}
}

// TestTableShrinksAfterRemovals fills a table, empties it again, and checks
// that the slot array shrank back to the minimum; keys added and removed
// around one size must not make it resize back and forth.
func TestTableShrinksAfterRemovals(t *testing.T) {
	seed := maphash.MakeSeed()
	tb := table{seed: seed}
	const n = 10_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
		h := maphash.String(seed, keys[i])
		tb.set(tb.insert(keys[i], h), keys[i], "v", h, 1, 0)
	}
	if len(tb.slots) < n {
		t.Fatalf("%d slots for %d keys", len(tb.slots), n)
	}
	for i, k := range keys {
		tb.remove(tb.find(k, maphash.String(seed, k)))
		// Whatever the size, the load stays at least 1/minLoadDen.
		if left := n - i - 1; len(tb.slots) > minTableSize && left*minLoadDen < len(tb.slots) {
			t.Fatalf("%d keys left in %d slots", left, len(tb.slots))
		}
	}
	if tb.n != 0 || len(tb.slots) != minTableSize || len(*tb.pub.Load()) != minTableSize {
		t.Fatalf("emptied table: n = %d, %d slots (%d published), want %d", tb.n, len(tb.slots), len(*tb.pub.Load()), minTableSize)
	}

	// Just past a shrink: one key in and out, many times, never resizes.
	for i := range 100 {
		h := maphash.String(seed, keys[i])
		tb.set(tb.insert(keys[i], h), keys[i], "v", h, 1, 0)
	}
	before := &tb.slots[0]
	for range 1000 {
		k := keys[len(keys)-1]
		h := maphash.String(seed, k)
		tb.set(tb.insert(k, h), k, "v", h, 1, 0)
		tb.remove(tb.find(k, h))
		if &tb.slots[0] != before {
			t.Fatal("a put and a delete of one key resized the table")
		}
	}
	for i := range 100 {
		if tb.find(keys[i], maphash.String(seed, keys[i])) < 0 {
			t.Fatalf("key %s lost", keys[i])
		}
	}
}

// TestShardFillsCacheLines checks that shards, laid out in an array, never
// share a cache line.
func TestShardFillsCacheLines(t *testing.T) {
	if n := unsafe.Sizeof(shard{}); n%64 != 0 {
		t.Errorf("a shard is %d bytes, not a multiple of 64", n)
	}
}
