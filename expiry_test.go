package kvstore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClockedStore(t *testing.T) (*Store, *fakeClock) {
	c := newFakeClock()
	s := New(WithClock(c.Now))
	t.Cleanup(func() { s.Close() })
	return s, c
}

func TestExpiryBasics(t *testing.T) {
	s, clock := newClockedStore(t)
	s.PutWithTTL("k", "v", 10*time.Second)
	s.Put("plain", "p")
	if ttl, ok := s.TTL("k"); !ok || ttl != 10*time.Second {
		t.Fatalf("TTL = %v, %v", ttl, ok)
	}
	if ttl, ok := s.TTL("plain"); !ok || ttl != 0 {
		t.Fatalf("TTL(plain) = %v, %v; want 0, true", ttl, ok)
	}
	if _, ok := s.TTL("missing"); ok {
		t.Fatal("TTL(missing) ok")
	}
	clock.Advance(10*time.Second - 1)
	if v, ok := s.Get("k"); !ok || v != "v" {
		t.Fatalf("Get 1ns before expiry = %q, %v", v, ok)
	}
	clock.Advance(1)
	if _, ok := s.Get("k"); ok {
		t.Fatal("Get at the expiry instant returned the key")
	}
	if _, ok := s.TTL("k"); ok {
		t.Fatal("TTL of an expired key ok")
	}
	if existed, _ := s.Delete("k"); existed {
		t.Fatal("Delete of an expired key reported it existed")
	}
	if ok, _ := s.Expire("k", time.Second); ok {
		t.Fatal("Expire of an expired key reported it existed")
	}
	if ok, _ := s.Persist("k"); ok {
		t.Fatal("Persist of an expired key reported it existed")
	}

	// Expire, Persist, and Put clearing the time to live.
	if ok, _ := s.Expire("plain", time.Minute); !ok {
		t.Fatal("Expire(plain) = false")
	}
	if ttl, _ := s.TTL("plain"); ttl != time.Minute {
		t.Fatalf("TTL after Expire = %v", ttl)
	}
	if ok, _ := s.Persist("plain"); !ok {
		t.Fatal("Persist(plain) = false")
	}
	if ttl, ok := s.TTL("plain"); !ok || ttl != 0 {
		t.Fatalf("TTL after Persist = %v, %v", ttl, ok)
	}
	s.Expire("plain", time.Minute)
	s.Put("plain", "again")
	clock.Advance(time.Hour)
	if v, ok := s.Get("plain"); !ok || v != "again" {
		t.Fatalf("Put did not clear the time to live: %q, %v", v, ok)
	}
	if ok, _ := s.Expire("plain", 0); !ok {
		t.Fatal("Expire(plain, 0) = false")
	}
	if _, ok := s.Get("plain"); ok {
		t.Fatal("Expire with ttl 0 did not delete")
	}
	if ok, _ := s.Expire("missing", time.Second); ok {
		t.Fatal("Expire(missing) = true")
	}
}

func TestExpiryIsADeleteAtTheInstant(t *testing.T) {
	t.Run("snapshot before the instant sees the key", func(t *testing.T) {
		s, clock := newClockedStore(t)
		s.PutWithTTL("k", "v", time.Second)
		tx := s.Begin()
		defer tx.Rollback()
		clock.Advance(2 * time.Second)
		if v, ok := tx.Get("k"); !ok || v != "v" {
			t.Fatalf("snapshot from before the expiry: %q, %v", v, ok)
		}
		if _, ok := s.Get("k"); ok {
			t.Fatal("Store.Get after the expiry returned the key")
		}
		s.expireStep() // reclaim: the snapshot still sees its version
		if v, ok := tx.Get("k"); !ok || v != "v" {
			t.Fatalf("snapshot after reclaim: %q, %v", v, ok)
		}
		if n := len(collect(tx.Ascend(""))); n != 1 {
			t.Fatalf("snapshot listing has %d keys", n)
		}
	})
	t.Run("snapshot after the instant does not", func(t *testing.T) {
		s, clock := newClockedStore(t)
		s.PutWithTTL("k", "v", time.Second)
		clock.Advance(time.Second)
		tx := s.Begin()
		defer tx.Rollback()
		if _, ok := tx.Get("k"); ok {
			t.Fatal("snapshot after the expiry sees the key")
		}
		if n := len(collect(tx.Ascend(""))); n != 0 {
			t.Fatalf("listing after the expiry has %d keys", n)
		}
	})
	t.Run("a read key that expires before commit conflicts", func(t *testing.T) {
		s, clock := newClockedStore(t)
		s.PutWithTTL("k", "v", time.Second)
		tx := s.Begin()
		tx.Get("k")
		tx.Put("other", "x")
		clock.Advance(time.Second)
		if err := tx.Commit(); !errors.Is(err, ErrConflict) {
			t.Fatalf("Commit = %v, want ErrConflict", err)
		}
	})
	t.Run("a listed key that expires before commit conflicts", func(t *testing.T) {
		s, clock := newClockedStore(t)
		s.PutWithTTL("p:k", "v", time.Second)
		tx := s.Begin()
		for range tx.Ascend("p:") {
		}
		tx.Put("other", "x")
		clock.Advance(time.Second)
		if err := tx.Commit(); !errors.Is(err, ErrConflict) {
			t.Fatalf("Commit = %v, want ErrConflict", err)
		}
	})
	t.Run("a read key that expires after commit does not", func(t *testing.T) {
		s, clock := newClockedStore(t)
		s.PutWithTTL("k", "v", time.Second)
		tx := s.Begin()
		tx.Get("k")
		tx.Put("other", "x")
		clock.Advance(time.Second - 1)
		if err := tx.Commit(); err != nil {
			t.Fatalf("Commit = %v", err)
		}
	})
	t.Run("read-only transactions never fail", func(t *testing.T) {
		s, clock := newClockedStore(t)
		s.PutWithTTL("k", "v", time.Second)
		tx := s.Begin()
		tx.Get("k")
		clock.Advance(time.Hour)
		if err := tx.Commit(); err != nil {
			t.Fatalf("Commit = %v", err)
		}
	})
}

func TestTxnExpiry(t *testing.T) {
	s, clock := newClockedStore(t)
	s.Put("a", "1")
	s.PutWithTTL("b", "2", time.Minute)
	tx := s.Begin()
	if ok, err := tx.Expire("a", 10*time.Second); !ok || err != nil {
		t.Fatalf("Txn.Expire(a) = %v, %v", ok, err)
	}
	if ttl, ok := tx.TTL("a"); !ok || ttl != 10*time.Second {
		t.Fatalf("Txn.TTL(a) = %v, %v", ttl, ok)
	}
	if ttl, _ := s.TTL("a"); ttl != 0 {
		t.Fatal("Txn.Expire is visible before commit")
	}
	if ttl, ok := tx.TTL("b"); !ok || ttl != time.Minute {
		t.Fatalf("Txn.TTL(b) = %v, %v", ttl, ok)
	}
	if ok, _ := tx.Persist("b"); !ok {
		t.Fatal("Txn.Persist(b) = false")
	}
	tx.PutWithTTL("c", "3", 5*time.Second)
	if ok, _ := tx.Expire("missing", time.Second); ok {
		t.Fatal("Txn.Expire(missing) = true")
	}
	clock.Advance(3 * time.Second) // the time to live runs from the commit
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := s.TTL("a"); ttl != 10*time.Second {
		t.Fatalf("TTL(a) after commit = %v", ttl)
	}
	if ttl, ok := s.TTL("b"); !ok || ttl != 0 {
		t.Fatalf("TTL(b) after commit = %v, %v", ttl, ok)
	}
	if ttl, _ := s.TTL("c"); ttl != 5*time.Second {
		t.Fatalf("TTL(c) after commit = %v", ttl)
	}

	// Expire reads the key: a concurrent change conflicts.
	tx = s.Begin()
	tx.Expire("a", time.Hour)
	s.Put("a", "changed")
	if err := tx.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("Commit = %v, want ErrConflict", err)
	}
	// Rolled back: nothing applied.
	tx = s.Begin()
	tx.Expire("a", time.Second)
	tx.Rollback()
	if ttl, _ := s.TTL("a"); ttl != 0 {
		t.Fatalf("rolled back Expire applied: %v", ttl)
	}
	err := s.View(func(tx *Txn) error {
		if _, err := tx.Expire("a", time.Second); !errors.Is(err, ErrTxnReadOnly) {
			return fmt.Errorf("Expire in View = %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestActiveExpiryReclaims(t *testing.T) {
	s, clock := newClockedStore(t)
	const n = 5000
	for i := 0; i < n; i++ {
		s.PutWithTTL(fmt.Sprintf("t%d", i), "v", time.Duration(1+i%2)*time.Second)
		s.Put(fmt.Sprintf("p%d", i), "v")
	}
	clock.Advance(time.Second) // half of the keys with a TTL expire
	for range numShards {      // a full pass over the tables, bounded steps
		s.expireStep()
	}
	if got := s.Len(); got != 2*n-n/2 {
		t.Fatalf("Len after one pass = %d, want %d", got, 2*n-n/2)
	}
	clock.Advance(time.Second)
	// The goroutine reclaims the rest by itself, without anyone reading.
	waitFor(t, "active expiry", func() bool { return s.Len() == n })
	keys := 0
	for i := range s.shards {
		keys += s.shards[i].t.n
	}
	if keys != n {
		t.Fatalf("tables hold %d keys, want %d", keys, n)
	}
	// No key has a time to live any more: the goroutine ends.
	waitFor(t, "the goroutine to end", func() bool {
		s.oracle.mu.Lock()
		defer s.oracle.mu.Unlock()
		return !s.expiry.running
	})
}

func TestCloseStopsActiveExpiry(t *testing.T) {
	base := runtime.NumGoroutine()
	s := New()
	s.PutWithTTL("k", "v", time.Hour)
	if runtime.NumGoroutine() <= base {
		t.Fatal("no active expiry goroutine")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close() // idempotent
	waitGoroutines(t, base)
	s.PutWithTTL("k2", "v", time.Hour) // no new goroutine after Close
	if v, ok := s.Get("k2"); !ok || v != "v" {
		t.Fatal("store unusable after Close")
	}
	waitGoroutines(t, base)
}
