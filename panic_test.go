package kvstore

import (
	"testing"
	"time"
)

// mustPanic runs f and fails the test unless it panics.
func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// mustNotHang runs f and fails the test if it has not returned within ten
// seconds: a lock left held by a panic makes it wait forever.
func mustNotHang(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s hangs: a panic left a lock held", what)
	}
}

// TestLocksSurvivePanics makes each path that holds the oracle's mutex and
// shard locks panic (timestamps exhausted; a transaction ended twice from a
// copy of it, as two goroutines misusing one Txn might), and checks that the
// store still works afterwards.
func TestLocksSurvivePanics(t *testing.T) {
	s := New()
	s.Put("k", "v")
	exhaust := func(f func()) {
		t.Helper()
		saved := s.oracle.committed.Load()
		s.oracle.committed.Store(maxTs)
		defer s.oracle.committed.Store(saved)
		f()
	}
	exhaust(func() { mustPanic(t, "Put past the last timestamp", func() { s.Put("k", "w") }) })
	mustNotHang(t, "Put after a panicking Put", func() { s.Put("a", "1") })

	exhaust(func() { mustPanic(t, "Delete past the last timestamp", func() { s.Delete("k") }) })
	mustNotHang(t, "Delete after a panicking Delete", func() { s.Delete("a") })

	tx := s.Begin()
	tx.Put("k", "x")
	exhaust(func() { mustPanic(t, "Commit past the last timestamp", func() { tx.Commit() }) })
	mustNotHang(t, "Put after a panicking Commit", func() { s.Put("b", "2") })

	tx = s.Begin()
	twin := *tx
	tx.Rollback()
	mustPanic(t, "ending a transaction twice", func() { twin.Rollback() })
	mustNotHang(t, "Begin after a panicking Rollback", func() { s.Begin().Rollback() })

	if v, _ := s.Get("b"); v != "2" {
		t.Errorf("Get(b) = %q after the panics, want 2", v)
	}
}
