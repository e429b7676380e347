package client

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestNestedTransactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		other := srv.dial(t)
		if err := c.Put(ctx, "k", "base"); err != nil {
			t.Fatal(err)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustGet := func(want string) {
			t.Helper()
			if v, err := tx.Get(ctx, "k"); v != want || err != nil {
				t.Fatalf("tx.Get(k) = %q, %v; want %q", v, err, want)
			}
		}
		if err := tx.Put(ctx, "k", "outer"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Begin(ctx); err != nil || tx.Depth() != 2 {
			t.Fatalf("nested Begin: %v, depth %d", err, tx.Depth())
		}
		if err := tx.Put(ctx, "k", "inner"); err != nil {
			t.Fatal(err)
		}
		mustGet("inner")
		if err := tx.Rollback(ctx); err != nil || tx.Depth() != 1 {
			t.Fatalf("nested Rollback: %v, depth %d", err, tx.Depth())
		}
		mustGet("outer")
		if err := tx.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "n", "nested"); err != nil {
			t.Fatal(err)
		}
		if existed, err := tx.Delete(ctx, "k"); !existed || err != nil {
			t.Fatalf("tx.Delete(k) = %v, %v", existed, err)
		}
		if err := tx.Commit(ctx); err != nil || tx.Depth() != 1 {
			t.Fatalf("nested Commit: %v, depth %d", err, tx.Depth())
		}
		if _, err := tx.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("tx.Get(k) after nested delete: %v", err)
		}
		// Nothing is visible outside before the outermost commit.
		if v, err := other.Get(ctx, "k"); v != "base" || err != nil {
			t.Fatalf("other client sees %q, %v before commit", v, err)
		}
		if _, err := other.Get(ctx, "n"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other client sees n before commit: %v", err)
		}
		if err := tx.Commit(ctx); err != nil || tx.Depth() != 0 {
			t.Fatalf("outer Commit: %v, depth %d", err, tx.Depth())
		}
		if _, err := other.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Errorf("k after commit: %v; want deleted", err)
		}
		if v, err := other.Get(ctx, "n"); v != "nested" || err != nil {
			t.Errorf("n after commit = %q, %v", v, err)
		}
		// The ended transaction refuses everything.
		if err := tx.Put(ctx, "x", "y"); !errors.Is(err, ErrTxnClosed) {
			t.Errorf("Put after end: %v", err)
		}
		if _, err := tx.Get(ctx, "n"); !errors.Is(err, ErrTxnClosed) {
			t.Errorf("Get after end: %v", err)
		}
		if err := tx.Commit(ctx); !errors.Is(err, ErrTxnClosed) {
			t.Errorf("Commit after end: %v", err)
		}
		if err := tx.Begin(ctx); !errors.Is(err, ErrTxnClosed) {
			t.Errorf("Begin after end: %v", err)
		}
	})
}

// TestTxnConnectionReuse: an ended transaction's connection serves the next
// one, which starts with no transaction state left over.
func TestTxnConnectionReuse(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := srv.dial(t, WithPoolSize(1))
	for i := range 5 {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "k", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			err = tx.Rollback(ctx)
		} else {
			err = tx.Commit(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := srv.store.Get("k"); v != "3" {
		t.Errorf("k = %q; want 3 (the last committed)", v)
	}
	c.mu.Lock()
	idle, all := len(c.idle), len(c.all)
	c.mu.Unlock()
	if idle != 1 || all != 2 {
		t.Errorf("%d idle transaction connections of %d; want 1 of 2 (one shared, one reused)", idle, all)
	}
}

func TestTxnTooDeep(t *testing.T) {
	srv := startServer(t, withMaxTxnDepth(3))
	ctx := testCtx(t)
	c := srv.dial(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for tx.Depth() < 3 {
		if err := tx.Begin(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Begin(ctx); !errors.Is(err, ErrTxnTooDeep) || tx.Depth() != 3 {
		t.Fatalf("Begin past the limit: %v, depth %d", err, tx.Depth())
	}
	if err := tx.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for tx.Depth() > 0 {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := srv.store.Get("k"); v != "v" {
		t.Errorf("k = %q after committing every level", v)
	}
}

func TestCommitConflict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		if err := c.Put(ctx, "acct", "100"); err != nil {
			t.Fatal(err)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Get(ctx, "acct"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "acct", "50"); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, "acct", "200"); err != nil { // another commit
			t.Fatal(err)
		}
		err = tx.Commit(ctx)
		var se *ServerError
		if !errors.Is(err, ErrConflict) || !errors.As(err, &se) || se.Cmd != "COMMIT" {
			t.Fatalf("Commit = %v; want a COMMIT *ServerError matching ErrConflict", err)
		}
		if tx.Depth() != 0 {
			t.Errorf("depth %d after a conflict; want 0", tx.Depth())
		}
		if v, _ := c.Get(ctx, "acct"); v != "200" {
			t.Errorf("acct = %q; the conflicting transaction must apply nothing", v)
		}
		// A blind write does not conflict.
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "acct", "300"); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, "acct", "400"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("blind write commit: %v", err)
		}
	})
}

// TestUpdateRetriesConflicts: the first attempt of fn is made to conflict
// by a write from another client; Update runs fn again, and the second
// attempt commits.
func TestUpdateRetriesConflicts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		if err := c.Put(ctx, "n", "0"); err != nil {
			t.Fatal(err)
		}
		attempts := 0
		err := c.Update(ctx, func(tx *Txn) error {
			attempts++
			v, err := tx.Get(ctx, "n")
			if err != nil {
				return err
			}
			n, _ := strconv.Atoi(v)
			if attempts == 1 {
				if err := c.Put(ctx, "n", "10"); err != nil {
					return err
				}
			}
			if err := tx.Begin(ctx); err != nil { // left open: Update commits it
				return err
			}
			return tx.Put(ctx, "n", strconv.Itoa(n+1))
		})
		if err != nil || attempts != 2 {
			t.Fatalf("Update = %v after %d attempts; want nil after 2", err, attempts)
		}
		if v, _ := c.Get(ctx, "n"); v != "11" {
			t.Errorf("n = %q; want 11", v)
		}

		// fn's error rolls back and is returned as is.
		boom := errors.New("boom")
		err = c.Update(ctx, func(tx *Txn) error {
			if err := tx.Put(ctx, "n", "never"); err != nil {
				return err
			}
			return boom
		})
		if err != boom {
			t.Errorf("Update = %v; want fn's error", err)
		}
		if v, _ := c.Get(ctx, "n"); v != "11" {
			t.Errorf("n = %q after a failed Update", v)
		}

		// Always conflicting: gives up after MaxUpdateAttempts.
		attempts = 0
		err = c.Update(ctx, func(tx *Txn) error {
			attempts++
			if _, err := tx.Get(ctx, "n"); err != nil {
				return err
			}
			if err := tx.Put(ctx, "m", "x"); err != nil { // not read-only
				return err
			}
			return c.Put(ctx, "n", strconv.Itoa(attempts))
		})
		if !errors.Is(err, ErrConflict) || attempts != MaxUpdateAttempts {
			t.Errorf("Update = %v after %d attempts; want ErrConflict after %d", err, attempts, MaxUpdateAttempts)
		}
	})
}

// TestConcurrentUpdates: goroutines increment shared counters with Update;
// every increment must survive, so conflicts must have been retried.
func TestConcurrentUpdates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		const goroutines, incs, counters = 8, 25, 2
		var wg sync.WaitGroup
		var runs atomic.Int64
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range incs {
					key := fmt.Sprintf("ctr%d", (g+i)%counters)
					err := c.Update(ctx, func(tx *Txn) error {
						runs.Add(1)
						n := 0
						v, err := tx.Get(ctx, key)
						switch {
						case err == nil:
							n, _ = strconv.Atoi(v)
						case !errors.Is(err, ErrNotFound):
							return err
						}
						return tx.Put(ctx, key, strconv.Itoa(n+1))
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		total := 0
		for i := range counters {
			v, err := c.Get(ctx, fmt.Sprintf("ctr%d", i))
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.Atoi(v)
			total += n
		}
		if total != goroutines*incs {
			t.Errorf("counters sum to %d; want %d", total, goroutines*incs)
		}
		t.Logf("%d increments took %d runs of fn", goroutines*incs, runs.Load())
	})
}

func TestView(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := srv.dial(t)
	if err := c.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	err := c.View(ctx, func(tx *Txn) error {
		if err := c.Put(ctx, "k", "after"); err != nil {
			return err
		}
		v, err := tx.Get(ctx, "k")
		if err != nil {
			return err
		}
		if v != "before" {
			return fmt.Errorf("View read %q; want its snapshot's %q", v, "before")
		}
		if err := tx.Put(ctx, "k", "x"); !errors.Is(err, ErrTxnReadOnly) {
			return fmt.Errorf("Put in View: %v", err)
		}
		if _, err := tx.Delete(ctx, "k"); !errors.Is(err, ErrTxnReadOnly) {
			return fmt.Errorf("Delete in View: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get(ctx, "k"); v != "after" {
		t.Errorf("k = %q", v)
	}
}
