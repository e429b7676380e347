package kvstore

import (
	"errors"
	"fmt"
	"testing"
)

// keysIn returns n keys of shard 0 whose collect bucket is bucket, none of
// them in avoid.
func keysIn(s *Store, n, bucket int, prefix string) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprint(prefix, i)
		if h := s.hash(k); shardIndex(h) == 0 && collectBucket(h) == bucket {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestCollectedTombstonesStillConflict fills shard 0's room for kept
// tombstones (an old transaction is open), so that further deletions there
// remove the key at once and mark its group. A transaction that read a
// missing key must still conflict when that key is created and deleted;
// one whose key lies in another group must not; one whose key shares the
// group conflicts, the price of the mark.
func TestCollectedTombstonesStillConflict(t *testing.T) {
	s := New()
	old := s.Begin()
	for _, k := range keysIn(s, maxKeptTombstones, 0, "fill") {
		s.Put(k, "v")
		s.Delete(k)
	}
	if got := s.shards[0].keptTombs; got != maxKeptTombstones {
		t.Fatalf("shard 0 keeps %d tombstones, want %d", got, maxKeptTombstones)
	}
	a := keysIn(s, 1, 1, "a")[0]
	check := func(name string, writeOther func(), want error) {
		t.Helper()
		tx := s.Begin()
		if _, ok := tx.Get(a); ok {
			t.Fatalf("%s exists", a)
		}
		tx.Put("w", "x")
		writeOther()
		if err := tx.Commit(); !errors.Is(err, want) && !(err == nil && want == nil) {
			t.Errorf("%s: commit = %v, want %v", name, err, want)
		}
	}
	putDelete := func(k string) func() {
		return func() {
			s.Put(k, "v")
			s.Delete(k)
		}
	}
	check("the key read was created and deleted", putDelete(a), ErrConflict)
	check("a key of another group was created and deleted", putDelete(keysIn(s, 1, 2, "b")[0]), nil)
	check("a key of the same group was created and deleted", putDelete(keysIn(s, 1, 1, "c")[0]), ErrConflict)
	if got := s.shards[0].keptTombs; got != maxKeptTombstones {
		t.Errorf("shard 0 keeps %d tombstones, want still %d", got, maxKeptTombstones)
	}
	old.Rollback()
	assertNoHistory(t, s)
	if s.shards[0].keptTombs != 0 {
		t.Errorf("shard 0 counts %d kept tombstones with no transaction open", s.shards[0].keptTombs)
	}
}

// BenchmarkTxnFalseConflicts measures the price of removing tombstones
// early: while a transaction stays open (so that every shard's room for kept
// tombstones fills up) and another goroutine creates and deletes new keys,
// transactions that read a key nobody writes and write another commit; the
// share that fails is reported as false-conflict-%.
func BenchmarkTxnFalseConflicts(b *testing.B) {
	s := New()
	idle := s.Begin()
	defer idle.Rollback()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprint("churn:", i)
			s.Put(k, "v")
			s.Delete(k)
		}
	}()
	var conflicts int
	i := 0
	for b.Loop() {
		tx := s.Begin()
		tx.Get(fmt.Sprint("missing:", i))
		tx.Put(fmt.Sprint("w:", i%1000), "x")
		if err := tx.Commit(); errors.Is(err, ErrConflict) {
			conflicts++
		}
		i++
	}
	close(stop)
	<-done
	b.ReportMetric(100*float64(conflicts)/float64(i), "false-conflict-%")
}
