package kvstore

import (
	"fmt"
	"testing"
	"time"
)

// TestExpirySurvivesRestart: the commit log and snapshots hold absolute
// expiry times, so after Close and Open a key expires at the same instant;
// active expiry's deletions are logged like any commit.
func TestExpirySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	open := func() *Store {
		t.Helper()
		s, err := Open(dir, WithClock(clock.Now), WithSync(SyncAlways))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	s.PutWithTTL("a", "1", 10*time.Second)
	s.Put("b", "2")
	s.Expire("b", 20*time.Second)
	s.Put("c", "3")
	s.Expire("c", time.Hour)
	s.Persist("c")
	s.PutWithTTL("gone", "x", time.Second)
	if err := s.Update(func(tx *Txn) error { return tx.PutWithTTL("t", "4", 30*time.Second) }); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	s.expireStep() // logs the deletion of "gone"
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	for _, c := range []struct {
		key string
		ttl time.Duration
	}{{"a", 9 * time.Second}, {"b", 19 * time.Second}, {"c", 0}, {"t", 29 * time.Second}} {
		if ttl, ok := s.TTL(c.key); !ok || ttl != c.ttl {
			t.Errorf("after restart TTL(%s) = %v, %v; want %v", c.key, ttl, ok, c.ttl)
		}
	}
	if s.Len() != 4 {
		t.Errorf("after restart Len = %d, want 4 (gone was deleted by active expiry)", s.Len())
	}
	// A snapshot keeps the expiry times too.
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(15 * time.Second)
	s = open()
	defer s.Close()
	if _, ok := s.Get("a"); ok {
		t.Error("a is still there after its expiry, across a compaction and a restart")
	}
	if ttl, ok := s.TTL("b"); !ok || ttl != 4*time.Second {
		t.Errorf("after compaction and restart TTL(b) = %v, %v; want 4s", ttl, ok)
	}
}

// TestOpenStartsExpiryOnceTheLogIsOpen: keys that expired while the store
// was closed are replayed with their expiry times; active expiry, which
// logs its deletions, starts only once Open has opened the log (before,
// a replay longer than its first tick made it log to no log and crash),
// and then deletes them.
func TestOpenStartsExpiryOnceTheLogIsOpen(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	s, err := Open(dir, WithClock(clock.Now), WithSync(SyncNever), WithAutoCompact(-1))
	if err != nil {
		t.Fatal(err)
	}
	const txns, perTxn = 5, 10000
	for i := range txns {
		if err := s.Update(func(tx *Txn) error {
			for j := range perTxn {
				if err := tx.PutWithTTL(fmt.Sprintf("k%d-%d", i, j), "v", time.Second); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	start := time.Now()
	s, err = Open(dir, WithClock(clock.Now), WithSync(SyncNever), WithAutoCompact(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("replayed %d keys in %v", txns*perTxn, time.Since(start))
	waitFor(t, "active expiry to delete the expired keys", func() bool {
		s.oracle.mu.Lock()
		defer s.oracle.mu.Unlock()
		return s.expiry.ttlKeys == 0
	})
}
