package client

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// Integration tests of Expire, TTL and Persist against a real
// kvstore.Server on loopback, on both backends. The server's store reads
// the time from a clock the test moves, so expiry happens without
// sleeping.

// testClock is a clock that moves only when the test says so.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}

// Now returns the clock's time.
func (c *testClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// forEachBackendClocked runs f as a subtest against a fresh server on each
// backend, whose store reads the time from a testClock.
func forEachBackendClocked(t *testing.T, f func(t *testing.T, srv *testServer, clock *testClock)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			clock := newTestClock()
			store := kvstore.New(kvstore.WithClock(clock.Now))
			t.Cleanup(func() { store.Close() }) // after the server stops
			ln, err := netListen()
			if err != nil {
				t.Fatal(err)
			}
			f(t, startServerOn(t, ln, store, kvstore.WithEventLoops(b.loops)), clock)
		})
	}
}

// ttlChecker checks the answers of a TTL call (of a Client or a Txn).
type ttlChecker struct {
	t   *testing.T
	ttl func(key string) (time.Duration, error)
}

// is fails the test unless TTL(key) answers want without an error.
func (c ttlChecker) is(key string, want time.Duration) {
	c.t.Helper()
	if got, err := c.ttl(key); got != want || err != nil {
		c.t.Fatalf("TTL(%q) = %v, %v; want %v, nil", key, got, err, want)
	}
}

// wantServerError fails the test unless err is a *ServerError of command
// cmd matching sentinel.
func wantServerError(t *testing.T, what string, err error, cmd string, sentinel error) {
	t.Helper()
	var se *ServerError
	if !errors.Is(err, sentinel) || !errors.As(err, &se) || se.Cmd != cmd {
		t.Errorf("%s: %v; want a %s *ServerError matching %v", what, err, cmd, sentinel)
	}
}

func TestExpireTTLPersist(t *testing.T) {
	forEachBackendClocked(t, func(t *testing.T, srv *testServer, clock *testClock) {
		ctx := testCtx(t)
		c := srv.dial(t)
		ttl := ttlChecker{t, func(k string) (time.Duration, error) { return c.TTL(ctx, k) }}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}

		must(c.Put(ctx, "k", "v"))
		ttl.is("k", 0) // no time to live
		must(c.Expire(ctx, "k", 10*time.Second))
		ttl.is("k", 10*time.Second)
		if d, ok := srv.store.TTL("k"); d != 10*time.Second || !ok {
			t.Fatalf("store TTL(k) = %v, %v; want 10s", d, ok)
		}
		clock.Advance(2500 * time.Millisecond)
		ttl.is("k", 8*time.Second) // 7.5 s left, rounded up
		must(c.Expire(ctx, "k", 1500*time.Millisecond))
		if d, _ := srv.store.TTL("k"); d != 2*time.Second {
			t.Fatalf("Expire(1.5s) set %v on the server; want 2s (rounded up to whole seconds)", d)
		}
		must(c.Persist(ctx, "k"))
		ttl.is("k", 0)
		must(c.Persist(ctx, "k")) // a key without a time to live: nothing to do
		ttl.is("k", 0)

		// PUT clears the time to live: the new value never expires.
		must(c.Expire(ctx, "k", time.Minute))
		must(c.Put(ctx, "k", "w"))
		ttl.is("k", 0)
		clock.Advance(2 * time.Minute)
		if v, err := c.Get(ctx, "k"); v != "w" || err != nil {
			t.Fatalf("Get(k) after PUT cleared its expiry and 2 minutes passed = %q, %v", v, err)
		}

		// A missing key: the client's not-found error, and nothing created.
		_, err := c.TTL(ctx, "nobody")
		wantServerError(t, "TTL(nobody)", err, "TTL", ErrNotFound)
		wantServerError(t, "Expire(nobody)", c.Expire(ctx, "nobody", time.Second), "EXPIRE", ErrNotFound)
		wantServerError(t, "Persist(nobody)", c.Persist(ctx, "nobody"), "PERSIST", ErrNotFound)
		if _, ok := srv.store.Get("nobody"); ok {
			t.Fatal("EXPIRE or PERSIST of a missing key created it")
		}

		// Times to live the protocol cannot carry.
		for _, d := range []time.Duration{0, -time.Second} {
			if err := c.Expire(ctx, "k", d); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Expire(k, %v) = %v; want ErrInvalidArgument", d, err)
			}
		}
		tooLong := time.Duration(kvstore.MaxExpireSeconds+1) * time.Second
		wantServerError(t, "Expire past the server's maximum", c.Expire(ctx, "k", tooLong), "EXPIRE", ErrInvalidArgument)
		ttl.is("k", 0)
		longest := time.Duration(kvstore.MaxExpireSeconds) * time.Second
		must(c.Expire(ctx, "k", longest))
		ttl.is("k", longest)
		must(c.Persist(ctx, "k"))

		// Expiry happens at the instant, for every kind of read.
		must(c.Put(ctx, "e", "v"))
		must(c.Expire(ctx, "e", 5*time.Second))
		clock.Advance(5*time.Second - time.Nanosecond)
		if v, err := c.Get(ctx, "e"); v != "v" || err != nil {
			t.Fatalf("Get(e) 1 ns before its expiry = %q, %v", v, err)
		}
		ttl.is("e", time.Second) // 1 ns left, rounded up
		clock.Advance(time.Nanosecond)
		_, err = c.Get(ctx, "e")
		wantServerError(t, "Get(e) at its expiry", err, "GET", ErrNotFound)
		_, err = c.TTL(ctx, "e")
		wantServerError(t, "TTL(e) at its expiry", err, "TTL", ErrNotFound)
		wantServerError(t, "Expire(e) at its expiry", c.Expire(ctx, "e", time.Second), "EXPIRE", ErrNotFound)
		wantServerError(t, "Persist(e) at its expiry", c.Persist(ctx, "e"), "PERSIST", ErrNotFound)
		if keys, err := c.Keys(ctx, "e"); len(keys) != 0 || err != nil {
			t.Fatalf("Keys(e) at its expiry = %q, %v; want none", keys, err)
		}
		if existed, err := c.Delete(ctx, "e"); existed || err != nil {
			t.Fatalf("Delete(e) at its expiry = %v, %v; want false, nil", existed, err)
		}

		// Expired keys are reclaimed without anyone reading them.
		for i := range 200 {
			k := "r:" + strings.Repeat("x", i%7) + strconv.Itoa(i)
			must(c.Put(ctx, k, "v"))
			must(c.Expire(ctx, k, time.Duration(1+i%3)*time.Second))
		}
		if n := srv.store.Len(); n < 200 {
			t.Fatalf("store holds %d keys; want at least 200", n)
		}
		clock.Advance(3 * time.Second)
		waitFor(t, "active expiry to reclaim the expired keys", func() bool { return srv.store.Len() == 1 }) // k
	})
}

// TestExpireInTxn: EXPIRE and PERSIST in a remote transaction are buffered
// like writes (the time to live runs from the commit), and a transaction
// whose snapshot predates an expiry still sees the key but conflicts if it
// read it.
func TestExpireInTxn(t *testing.T) {
	forEachBackendClocked(t, func(t *testing.T, srv *testServer, clock *testClock) {
		ctx := testCtx(t)
		c := srv.dial(t)
		ttl := ttlChecker{t, func(k string) (time.Duration, error) { return c.TTL(ctx, k) }}
		if err := c.Put(ctx, "x", "v"); err != nil {
			t.Fatal(err)
		}

		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		txTTL := ttlChecker{t, func(k string) (time.Duration, error) { return tx.TTL(ctx, k) }}
		if err := tx.Expire(ctx, "x", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		txTTL.is("x", 30*time.Second)
		ttl.is("x", 0) // not visible before the commit
		err = tx.Expire(ctx, "nobody", time.Second)
		wantServerError(t, "tx.Expire(nobody)", err, "EXPIRE", ErrNotFound)
		err = tx.Persist(ctx, "nobody")
		wantServerError(t, "tx.Persist(nobody)", err, "PERSIST", ErrNotFound)
		_, err = tx.TTL(ctx, "nobody")
		wantServerError(t, "tx.TTL(nobody)", err, "TTL", ErrNotFound)
		if tx.Depth() != 1 {
			t.Fatalf("a not-found error ended the transaction (depth %d)", tx.Depth())
		}
		clock.Advance(10 * time.Second)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		ttl.is("x", 30*time.Second) // runs from the commit

		// A rolled back EXPIRE or PERSIST changes nothing.
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Persist(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		if d, err := tx.TTL(ctx, "x"); d != 0 || err != nil {
			t.Fatalf("tx.TTL(x) after tx.Persist = %v, %v", d, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		ttl.is("x", 30*time.Second)

		// PERSIST in a nested level, committed all the way.
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Persist(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		ttl.is("x", 0)

		// A snapshot taken before the expiry still sees the key; having
		// read it, the transaction cannot commit after the key expired.
		if err := c.Expire(ctx, "x", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		reader, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		blind, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := reader.Get(ctx, "x"); v != "v" || err != nil {
			t.Fatalf("reader.Get(x) = %q, %v", v, err)
		}
		clock.Advance(6 * time.Second)
		if _, err := c.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(x) after its expiry = %v; want ErrNotFound", err)
		}
		if v, err := reader.Get(ctx, "x"); v != "v" || err != nil {
			t.Fatalf("reader.Get(x) after the expiry, in the older snapshot = %q, %v", v, err)
		}
		if keys, err := reader.Keys(ctx, "x"); len(keys) != 1 || err != nil {
			t.Fatalf("reader.Keys(x) in the older snapshot = %q, %v", keys, err)
		}
		if err := reader.Put(ctx, "seen", "x"); err != nil {
			t.Fatal(err)
		}
		wantServerError(t, "commit of a transaction that read a key which expired since", reader.Commit(ctx), "COMMIT", ErrConflict)
		if _, err := c.Get(ctx, "seen"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the conflicting transaction applied its write: %v", err)
		}
		// One that did not read the key commits.
		if err := blind.Put(ctx, "blind", "x"); err != nil {
			t.Fatal(err)
		}
		if err := blind.Commit(ctx); err != nil {
			t.Fatalf("blind write after an expiry: %v", err)
		}

		// A read-only transaction refuses EXPIRE and PERSIST without
		// sending them.
		err = c.View(ctx, func(tx *Txn) error {
			if err := tx.Expire(ctx, "blind", time.Second); !errors.Is(err, ErrTxnReadOnly) {
				t.Errorf("Expire in View = %v; want ErrTxnReadOnly", err)
			}
			if err := tx.Persist(ctx, "blind"); !errors.Is(err, ErrTxnReadOnly) {
				t.Errorf("Persist in View = %v; want ErrTxnReadOnly", err)
			}
			_, err := tx.TTL(ctx, "blind")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ttl.is("blind", 0)
	})
}
