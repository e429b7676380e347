package kvstore

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// historyStats counts what the store holds: map entries, tombstone entries,
// and older versions hanging off entries.
type historyStats struct {
	entries, tombstones, older int
}

func stats(s *Store) historyStats {
	s.sweepers.Wait() // what ended snapshots pinned is trimmed
	var st historyStats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		inShard := 0
		for j := range sh.t.slots {
			if sh.t.slots[j].rec == nil {
				continue
			}
			e := sh.entryAt(j)
			inShard++
			st.entries++
			if e.deleted() {
				st.tombstones++
			}
			for v := e.older; v != nil; v = v.older {
				st.older++
			}
		}
		if len(sh.hist) > inShard {
			panic("history for keys the table does not hold")
		}
		sh.mu.RUnlock()
	}
	return st
}

// assertNoHistory checks that, with no transaction open, the store keeps
// exactly one version per live key: no old versions, no tombstones.
func assertNoHistory(t *testing.T, s *Store) {
	t.Helper()
	got := stats(s)
	want := historyStats{entries: s.Len()}
	if got != want {
		t.Errorf("store holds %+v with no transaction open, want %+v", got, want)
	}
}

func TestHistoryIsTrimmedWithoutTransactions(t *testing.T) {
	s := New()
	for i := range 1000 {
		s.Put("k", fmt.Sprint(i))
		s.Put(fmt.Sprint("d", i), "x")
		s.Delete(fmt.Sprint("d", i))
	}
	if diff := stats(s); diff != (historyStats{entries: 1}) {
		t.Errorf("after 1000 overwrites and 1000 put+delete: %+v, want one entry", diff)
	}
}

func TestOpenTransactionPinsOnlyWhatItSees(t *testing.T) {
	s := New()
	s.Put("k", "v0")
	s.Put("gone", "x")
	tx := s.Begin()

	for i := 1; i <= 1000; i++ {
		s.Put("k", fmt.Sprint("v", i))
	}
	s.Delete("gone")
	for i := range 100 {
		s.Put(fmt.Sprint("new", i), "x") // created after the snapshot: nothing to pin
		s.Delete(fmt.Sprint("new", i))
	}
	// k: the newest version plus v0, which tx sees; gone: its tombstone plus
	// the value tx sees. None of the 999 versions in between, nor the values
	// of the keys created after the snapshot. Their tombstones stay while tx
	// is open, so that a transaction that read such a key as missing still
	// detects the change at commit.
	want := historyStats{entries: 102, tombstones: 101, older: 2}
	if got := stats(s); got != want {
		t.Errorf("with one open transaction: %+v, want %+v", got, want)
	}
	if v, _ := tx.Get("k"); v != "v0" {
		t.Errorf("tx.Get(k) = %q, want v0", v)
	}
	if v, ok := tx.Get("gone"); !ok || v != "x" {
		t.Errorf("tx.Get(gone) = %q, %v, want x", v, ok)
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	assertNoHistory(t, s)
	if s.Len() != 1 {
		t.Errorf("Len = %d, want 1", s.Len())
	}
}

func TestSnapshotsPinTheirOwnVersions(t *testing.T) {
	s := New()
	var txns []*Txn
	for i := range 5 {
		s.Put("k", fmt.Sprint(i))
		txns = append(txns, s.Begin())
		s.Put("k", fmt.Sprint(i, "-unseen")) // never visible to any snapshot
	}
	for i := range 10 {
		s.Put("noise", fmt.Sprint(i)) // newer than every snapshot: only the newest stays
	}
	// Each snapshot sees k = i; the "-unseen" versions between are garbage,
	// except the newest, which is current.
	if got, want := stats(s), (historyStats{entries: 2, older: 5}); got != want {
		t.Errorf("with 5 snapshots: %+v, want %+v", got, want)
	}
	for i, tx := range txns {
		if v, _ := tx.Get("k"); v != fmt.Sprint(i) {
			t.Errorf("snapshot %d reads %q", i, v)
		}
	}
	// Ending the oldest releases what only it could see.
	txns[0].Rollback()
	if got, want := stats(s), (historyStats{entries: 2, older: 4}); got != want {
		t.Errorf("after ending the oldest: %+v, want %+v", got, want)
	}
	for _, tx := range txns[1:] {
		tx.Commit()
	}
	assertNoHistory(t, s)
}

func TestCommittedTransactionsLeaveNoHistory(t *testing.T) {
	s := New()
	for i := range 200 {
		err := s.Update(func(tx *Txn) error {
			for j := range 10 {
				k := fmt.Sprint("k", j)
				v, _ := tx.Get(k)
				tx.Put(k, v+"x")
			}
			if i%2 == 0 {
				_, err := tx.Delete("k3")
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	assertNoHistory(t, s)
}

// TestHeapStaysBoundedUnderOverwrites overwrites a set of large values many
// times and checks the live heap afterwards holds about one copy of them,
// both with no transaction open and after a long one has ended.
func TestHeapStaysBoundedUnderOverwrites(t *testing.T) {
	const keys, size, rounds = 1000, 4096, 20
	live := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	s := New()
	base := live()
	overwrite := func(round int) {
		for k := range keys {
			s.Put(fmt.Sprint("k", k), strings.Repeat(string(rune('a'+round%26)), size))
		}
	}
	for r := range rounds {
		overwrite(r)
	}
	oneCopy := uint64(keys * size)
	if grew := live() - base; grew > 2*oneCopy {
		t.Errorf("heap grew %d bytes for %d bytes of live values", grew, oneCopy)
	}

	tx := s.Begin()
	for r := range rounds {
		overwrite(r)
	}
	// The open transaction pins one older copy, not twenty.
	if grew := live() - base; grew > 3*oneCopy {
		t.Errorf("with an open transaction heap grew %d bytes; one pinned copy is %d", grew, oneCopy)
	}
	tx.Rollback()
	s.sweepers.Wait()
	if grew := live() - base; grew > 2*oneCopy {
		t.Errorf("after the transaction ended heap grew %d bytes for %d bytes of live values", grew, oneCopy)
	}
	runtime.KeepAlive(s)
}

// liveHeap returns the heap in use after a garbage collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestHeapReturnsAfterDeletes puts a million keys and deletes them all: the
// heap must come back to within a few MiB of where it started (the tables
// shrink), where before the fix 32 MB of slot arrays stayed.
func TestHeapReturnsAfterDeletes(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 200_000
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("key:", i)
	}
	val := strings.Repeat("v", 64)
	s := New()
	base := liveHeap()
	for _, k := range keys {
		s.Put(k, val)
	}
	full := liveHeap()
	for _, k := range keys {
		s.Delete(k)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after deleting every key", s.Len())
	}
	const slack = 2 << 20
	grew := liveHeap() - base
	t.Logf("%d puts and deletes: the heap is %d bytes above the start (%d with the keys in)", n, grew, full-base)
	if grew > slack {
		t.Errorf("after %d puts and deletes the heap is %d bytes above the start (%d with the keys in), want at most %d",
			n, grew, full-base, slack)
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(keys) // measured above as part of base
}

// TestHeapReturnsAfterLongTransaction keeps a transaction open while many
// keys are overwritten (each keeping the version it sees), ends it, and
// checks that the history and the bookkeeping of what it pinned are gone
// from the heap, not only from the tables.
func TestHeapReturnsAfterLongTransaction(t *testing.T) {
	n := 300_000
	if testing.Short() || raceEnabled {
		n = 100_000
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("key:", i)
	}
	s := New()
	for _, k := range keys {
		s.Put(k, "a")
	}
	base := liveHeap()
	tx := s.Begin()
	for _, k := range keys {
		s.Put(k, "b")
	}
	pinned := liveHeap()
	tx.Rollback()
	assertNoHistory(t, s)
	const slack = 2 << 20
	grew := liveHeap() - base
	t.Logf("a transaction that pinned %d keys ended: the heap is %d bytes above the start (%d while pinned)", n, grew, pinned-base)
	if grew > slack {
		t.Errorf("after the transaction that pinned %d keys ended, the heap is %d bytes above the start (%d while pinned), want at most %d",
			n, grew, pinned-base, slack)
	}
	runtime.KeepAlive(s)
	runtime.KeepAlive(keys) // measured above as part of base
}

// TestIdleTransactionKeepsFewTombstones holds a transaction open (it read a
// key that does not exist) while others create and delete many new keys:
// the store keeps at most maxKeptTombstones tombstones per shard, not one
// per deleted key, and the open transaction still conflicts at commit,
// because the key it read as missing was created and deleted after its
// snapshot.
func TestIdleTransactionKeepsFewTombstones(t *testing.T) {
	n := 200_000
	if testing.Short() || raceEnabled {
		n = 50_000
	}
	s := New()
	base := liveHeap()
	idle := s.Begin()
	if _, ok := idle.Get("key:7"); ok {
		t.Fatal("key:7 exists")
	}
	idle.Put("other", "x")
	for i := range n {
		k := fmt.Sprint("key:", i)
		s.Put(k, "v")
		s.Delete(k)
	}
	st := stats(s)
	if limit := numShards * maxKeptTombstones; st.tombstones > limit || st.entries != st.tombstones || st.older != 0 {
		t.Errorf("after %d keys created and deleted under an open transaction: %+v, want at most %d tombstones and nothing else", n, st, limit)
	}
	const slack = 4 << 20
	grew := liveHeap() - base
	t.Logf("%d keys created and deleted under an open transaction: %+v, the heap grew %d bytes", n, st, grew)
	if grew > slack {
		t.Errorf("the heap grew %d bytes for an empty store, want at most %d", grew, slack)
	}
	if err := idle.Commit(); !errors.Is(err, ErrConflict) {
		t.Errorf("commit of a transaction that read key:7 as missing before it was created and deleted: %v, want ErrConflict", err)
	}
	assertNoHistory(t, s)
}

// TestEndingAnySnapshotTrims holds an old snapshot open on an empty store
// while rounds of {Put(k, 1 KiB); begin a short transaction; Put(k, small);
// end it} run, each on a new key: the 1 KiB versions are visible only to the
// short transactions, so each must go when its transaction ends, not wait
// for the old snapshot.
func TestEndingAnySnapshotTrims(t *testing.T) {
	const rounds = 20_000
	s := New()
	old := s.Begin()
	base := liveHeap()
	big := strings.Repeat("x", 1024)
	for i := range rounds {
		k := fmt.Sprint("k", i)
		s.Put(k, big)
		short := s.Begin()
		s.Put(k, "small")
		if v, _ := short.Get(k); v != big {
			t.Fatalf("the short transaction reads %d bytes, want 1024", len(v))
		}
		if i%2 == 0 {
			short.Rollback()
		} else {
			short.Commit()
		}
	}
	if st := stats(s); st != (historyStats{entries: rounds}) {
		t.Errorf("with the old snapshot still open: %+v, want %d entries and no history", st, rounds)
	}
	st := stats(s)
	grew, limit := liveHeap()-base, int64(rounds*100)
	t.Logf("%d rounds under an old snapshot: %+v, the heap grew %d bytes", rounds, st, grew)
	if grew > limit {
		t.Errorf("the heap grew %d bytes for %d small keys, want at most %d", grew, rounds, limit)
	}
	if _, ok := old.Get("k0"); ok {
		t.Error("the old snapshot sees k0")
	}
	old.Rollback()
	assertNoHistory(t, s)
}
