package kvstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// recountMemory computes from scratch what MemoryUsage should report.
func recountMemory(s *Store) int64 {
	s.sweepers.Wait()
	n := int64(unsafe.Sizeof(*s)) + s.txnMem.Load()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += int64(len(sh.t.slots)) * slotBytes
		for j := range sh.t.slots {
			if sh.t.slots[j].rec == nil {
				continue
			}
			_, hasHistory := sh.historyOf(sh.t.key(j))
			n += footprint(len(sh.t.key(j)), sh.entryAt(j), hasHistory)
			if sh.t.keys != nil {
				n += orderedKeyBytes(len(sh.t.key(j)))
			}
		}
		sh.mu.RUnlock()
	}
	s.oracle.mu.Lock()
	for _, sn := range s.oracle.snapshots {
		for k := range sn.pinned {
			n += pinnedBytes(k)
		}
	}
	s.oracle.mu.Unlock()
	return n
}

func assertAccounted(t *testing.T, s *Store, when string) {
	t.Helper()
	if got, want := s.MemoryUsage(), recountMemory(s); got != want {
		t.Fatalf("%s: MemoryUsage = %d, recounted %d", when, got, want)
	}
}

func TestAllocBytes(t *testing.T) {
	for _, c := range []struct{ n, want int64 }{
		{0, 0}, {1, 16}, {16, 16}, {17, 32}, {256, 256}, {257, 288}, {1024, 1024},
		{1025, 1152}, {32 << 10, 32 << 10}, {32<<10 + 1, 40 << 10},
	} {
		if got := allocBytes(int(c.n)); got != c.want {
			t.Errorf("allocBytes(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestMemoryAccountIsExact runs random puts, deletes and transactions (some
// left open across many operations, so that history, pinned sets and kept
// tombstones come and go) and checks after each step that the running
// account equals a recount of everything the store holds.
func TestMemoryAccountIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := New()
	base := s.MemoryUsage()
	var txns []*Txn
	for step := range 20_000 {
		k := fmt.Sprint("k", rng.IntN(300))
		switch r := rng.IntN(100); {
		case r < 40:
			s.Put(k, strings.Repeat("v", rng.IntN(600)))
		case r < 45:
			s.PutWithTTL(k, strings.Repeat("e", rng.IntN(600)), time.Hour)
		case r < 80:
			s.Delete(k)
		case r < 85 && len(txns) < 5:
			txns = append(txns, s.Begin())
		case r < 90 && len(txns) > 0:
			i := rng.IntN(len(txns))
			tx := txns[i]
			tx.Get(k)
			tx.Put(fmt.Sprint("k", rng.IntN(300)), "t")
			tx.Delete(fmt.Sprint("k", rng.IntN(300)))
			if rng.IntN(2) == 0 {
				tx.Commit()
			} else {
				tx.Rollback()
			}
			txns = append(txns[:i], txns[i+1:]...)
		}
		assertAccounted(t, s, fmt.Sprint("step ", step))
	}
	for _, tx := range txns {
		tx.Rollback()
	}
	assertAccounted(t, s, "all transactions ended")
	for i := range 300 {
		s.Delete(fmt.Sprint("k", i))
	}
	assertNoHistory(t, s)
	if got, most := s.MemoryUsage()-base, int64(numShards*minTableSize)*slotBytes; got > most {
		t.Errorf("an emptied store accounts %d bytes more than a new one, want at most %d (its minimal tables)", got, most)
	}
}

// TestMemoryUsageTracksHeap checks that the account follows the live heap
// the store really holds, within a quarter, for small and large values.
func TestMemoryUsageTracksHeap(t *testing.T) {
	for _, size := range []int{16, 100, 1000, 40_000} {
		n := 20 << 20 / (size + 16)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprint("key:", i)
		}
		val := strings.Repeat("v", size)
		s := New()
		heap0, used0 := liveHeap(), s.MemoryUsage()
		for _, k := range keys {
			s.Put(k, val)
		}
		heap, used := liveHeap()-heap0, s.MemoryUsage()-used0
		if ratio := float64(used) / float64(heap); ratio < 0.75 || ratio > 1.25 {
			t.Errorf("%d values of %d bytes: MemoryUsage grew %d, the heap %d", n, size, used, heap)
		}
		runtime_KeepAlive(s, keys)
	}
}

// TestMemoryLimit fills a store with a limit until writes are refused, and
// checks that a refused write applies nothing, that reads and deletes keep
// working and that writes succeed again after deletes.
func TestMemoryLimit(t *testing.T) {
	const limit = 1 << 20
	s := New(WithMaxMemory(limit))
	val := strings.Repeat("v", 100)
	var n int
	for ; ; n++ {
		err := s.Put(fmt.Sprint("k", n), val)
		if errors.Is(err, ErrMemoryLimit) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > limit {
			t.Fatal("writes never refused")
		}
	}
	if used := s.MemoryUsage(); used > limit || used < limit*3/4 {
		t.Errorf("refused at %d bytes of a %d-byte limit", used, limit)
	}
	if _, ok := s.Get(fmt.Sprint("k", n)); ok || s.Len() != n {
		t.Errorf("the refused Put applied: Len = %d, want %d", s.Len(), n)
	}
	if v, ok := s.Get("k0"); !ok || v != val {
		t.Error("reads fail over the limit")
	}

	// A transaction: buffering refused, commits that put refused, commits
	// that delete accepted.
	tx := s.Begin()
	if _, ok := tx.Get("k1"); !ok {
		t.Error("transaction reads fail over the limit")
	}
	// The refused Put may have left a little room (it also needed room for
	// its shard's table to grow): this value is far larger.
	if err := tx.Put("new", strings.Repeat("x", 64<<10)); !errors.Is(err, ErrMemoryLimit) {
		t.Errorf("Txn.Put over the limit: %v, want ErrMemoryLimit", err)
	}
	if _, err := tx.Delete("k1"); err != nil {
		t.Errorf("Txn.Delete over the limit: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("a commit that deletes over the limit: %v", err)
	}
	if _, ok := s.Get("k1"); ok {
		t.Error("the committed delete did not apply")
	}

	// Deleting makes room again.
	for i := 2; i < n/2; i++ {
		if existed, err := s.Delete(fmt.Sprint("k", i)); !existed || err != nil {
			t.Fatalf("Delete over the limit: %v, %v", existed, err)
		}
	}
	if err := s.Put("again", val); err != nil {
		t.Errorf("Put after deletes: %v", err)
	}

	// A commit whose writes were buffered below the limit, but no longer
	// fit when it commits (others filled the store, then deleted keys while
	// the transaction's snapshot, which sees them, stayed open: deletes are
	// never refused, and their tombstones and the versions kept for the
	// snapshot take memory) fails, applies nothing, and ends the
	// transaction.
	tx = s.Begin()
	for i := range 10 {
		if err := tx.Put(fmt.Sprint("t", i), val); err != nil {
			t.Fatalf("Txn.Put: %v", err)
		}
	}
	for i := 0; s.Put(fmt.Sprint("fill", i), val) == nil; i++ {
	}
	for i := n / 2; i < n/2+100; i++ {
		s.Delete(fmt.Sprint("k", i))
	}
	before := s.Len()
	if err := tx.Commit(); !errors.Is(err, ErrMemoryLimit) {
		t.Errorf("a commit past the limit: %v, want ErrMemoryLimit", err)
	}
	if _, ok := s.Get("t0"); ok || s.Len() != before || tx.Depth() != 0 {
		t.Errorf("the refused commit applied something (Len %d, was %d) or left the transaction open (depth %d)", s.Len(), before, tx.Depth())
	}
	assertAccounted(t, s, "after the limit test")
}

func runtime_KeepAlive(xs ...any) { runtime.KeepAlive(xs) }

// TestTxnBuffersAccountReplacedWrites checks that a transaction that puts
// the same key many times accounts for one buffered write, not for each.
func TestTxnBuffersAccountReplacedWrites(t *testing.T) {
	s := New(WithMaxMemory(1 << 20))
	tx := s.Begin()
	val := strings.Repeat("v", 1000)
	for i := range 10_000 {
		if err := tx.Put("k", val[:i%1000]); err != nil {
			t.Fatalf("Put #%d of one key: %v", i, err)
		}
	}
	if tx.bufs.mem > 2000 || s.MemoryUsage() > 64<<10 {
		t.Errorf("one buffered write accounts %d bytes; the store %d", tx.bufs.mem, s.MemoryUsage())
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	assertAccounted(t, s, "after the commit")
}
