package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// Listings inside remote transactions, against a real kvstore.Server on
// both backends: a transaction lists its snapshot plus its own writes, and
// a listing is a read of its range (no phantoms).

// TestKeysInTxn: a transaction's Keys, KeysPage and AllKeys see its own
// writes (in nested levels too) and nothing committed after its snapshot,
// and its commit conflicts when another client changed the listed range.
func TestKeysInTxn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		other := srv.dial(t)
		putAll(t, c, []string{"t:1", "t:3", "t:5", "u:1"})

		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantKeys := func(prefix string, want ...string) {
			t.Helper()
			got, err := tx.Keys(ctx, prefix)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("tx.Keys(%q) = %q, %v; want %q", prefix, got, err, want)
			}
		}
		if err := tx.Put(ctx, "t:2", "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Delete(ctx, "t:3"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "t:9", "v"); err != nil {
			t.Fatal(err)
		}
		// Committed by another client after the snapshot: not seen.
		if err := other.Put(ctx, "t:4", "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Delete(ctx, "t:5"); err != nil {
			t.Fatal(err)
		}
		wantKeys("t:", "t:1", "t:2", "t:5", "t:9")
		wantKeys("", "t:1", "t:2", "t:5", "t:9", "u:1")
		if got, err := other.Keys(ctx, "t:"); err != nil || !slices.Equal(got, []string{"t:1", "t:3", "t:4"}) {
			t.Fatalf("other.Keys(t:) during the transaction = %q, %v", got, err)
		}

		// Nested levels: a rolled back level's writes leave the listing.
		if err := tx.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "t:0", "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Delete(ctx, "t:9"); err != nil {
			t.Fatal(err)
		}
		wantKeys("t:", "t:0", "t:1", "t:2", "t:5")
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		wantKeys("t:", "t:1", "t:2", "t:5", "t:9")

		// Pages come from the same snapshot plus the transaction's writes.
		if keys, more, err := tx.KeysPage(ctx, "t:", "t:1", 2); err != nil || !slices.Equal(keys, []string{"t:2", "t:5"}) || !more {
			t.Fatalf("tx.KeysPage after t:1 = %q, %v, %v", keys, more, err)
		}
		var all []string
		for k, err := range tx.AllKeys(ctx, "t:", 1) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, k)
		}
		if !slices.Equal(all, []string{"t:1", "t:2", "t:5", "t:9"}) {
			t.Fatalf("tx.AllKeys(t:) = %q", all)
		}

		// The listed range changed after the snapshot: the commit
		// conflicts and applies nothing.
		wantServerError(t, "commit after the listed range changed", tx.Commit(ctx), "COMMIT", ErrConflict)
		if got, err := c.Keys(ctx, "t:"); err != nil || !slices.Equal(got, []string{"t:1", "t:3", "t:4"}) {
			t.Fatalf("Keys(t:) after the conflict = %q, %v", got, err)
		}

		// A listing of a range nobody changed commits, with its writes.
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if keys, err := tx.Keys(ctx, "t:"); err != nil || len(keys) != 3 {
			t.Fatalf("tx.Keys(t:) = %q, %v", keys, err)
		}
		if err := other.Put(ctx, "u:2", "v"); err != nil { // outside the range
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "t:count", "3"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit of a listing whose range did not change: %v", err)
		}
		if got, err := c.Keys(ctx, "t:"); err != nil || !slices.Equal(got, []string{"t:1", "t:3", "t:4", "t:count"}) {
			t.Fatalf("Keys(t:) after the commit = %q, %v", got, err)
		}

		// A page is a read only of the range it covered: a key created
		// past the page's last key does not conflict.
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if keys, more, err := tx.KeysPage(ctx, "t:", "", 2); err != nil || !slices.Equal(keys, []string{"t:1", "t:3"}) || !more {
			t.Fatalf("tx.KeysPage(t:, 2) = %q, %v, %v", keys, more, err)
		}
		if err := other.Put(ctx, "t:7", "v"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "u:3", "v"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit after a change past the listed page: %v", err)
		}
		// ... and one created inside it does.
		tx, err = c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tx.KeysPage(ctx, "t:", "", 2); err != nil {
			t.Fatal(err)
		}
		if err := other.Put(ctx, "t:2", "v"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Put(ctx, "u:4", "v"); err != nil {
			t.Fatal(err)
		}
		wantServerError(t, "commit after a key was created inside the listed page", tx.Commit(ctx), "COMMIT", ErrConflict)

		// A read-only transaction lists its snapshot and never conflicts.
		err = c.View(ctx, func(tx *Txn) error {
			before, err := tx.Keys(ctx, "t:")
			if err != nil {
				return err
			}
			if _, err := other.Delete(ctx, "t:1"); err != nil {
				return err
			}
			after, err := tx.Keys(ctx, "t:")
			if err != nil {
				return err
			}
			if !slices.Equal(before, after) || !slices.Contains(after, "t:1") {
				return fmt.Errorf("View listed %q, then %q after another client deleted t:1", before, after)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// phantomResult is how one transaction of a phantom round ended.
type phantomResult struct {
	counted int
	err     error
}

// phantomRound runs the classic phantom anomaly over the client: two
// transactions each count the keys with prefix (through list) and insert a
// key of their own under it, recording the count, then both commit at
// once. list is how a transaction counts.
func phantomRound(ctx context.Context, c *Client, prefix string, list func(tx *Txn, prefix string) ([]string, error)) ([2]phantomResult, error) {
	var res [2]phantomResult
	txs := make([]*Txn, 2)
	for i := range txs {
		tx, err := c.Begin(ctx)
		if err != nil {
			return res, err
		}
		txs[i] = tx
	}
	// Both count before either inserts or commits.
	for i, tx := range txs {
		keys, err := list(tx, prefix)
		if err != nil {
			return res, err
		}
		res[i].counted = len(keys)
	}
	for i, tx := range txs {
		if err := tx.Put(ctx, prefix+"tx"+strconv.Itoa(i), strconv.Itoa(res[i].counted)); err != nil {
			return res, err
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, tx := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res[i].err = tx.Commit(ctx)
		}()
	}
	close(start)
	wg.Wait()
	return res, nil
}

// checkPhantomRound returns an error unless exactly one transaction of the
// round committed and the other failed with ErrConflict.
func checkPhantomRound(res [2]phantomResult) error {
	committed, conflicted := 0, 0
	for _, r := range res {
		switch {
		case r.err == nil:
			committed++
		case errors.Is(r.err, ErrConflict):
			conflicted++
		default:
			return fmt.Errorf("commit failed: %v", r.err)
		}
	}
	if committed != 1 || conflicted != 1 {
		return fmt.Errorf("%d transactions committed and %d conflicted; want 1 and 1 (a phantom: each counted %d and %d keys without seeing the other's insert)", committed, conflicted, res[0].counted, res[1].counted)
	}
	return nil
}

// TestPhantomOverClient: two remote transactions each count a prefix and
// insert under it; exactly one commits, the other gets ErrConflict. The
// check is shown catching the anomaly when the count is taken outside the
// transactions.
func TestPhantomOverClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t, WithPoolSize(4))
		inTxn := func(tx *Txn, prefix string) ([]string, error) { return tx.Keys(ctx, prefix) }
		pagedInTxn := func(tx *Txn, prefix string) ([]string, error) {
			var keys []string
			for k, err := range tx.AllKeys(ctx, prefix, 1) {
				if err != nil {
					return nil, err
				}
				keys = append(keys, k)
			}
			return keys, nil
		}
		outside := func(_ *Txn, prefix string) ([]string, error) { return c.Keys(ctx, prefix) }

		for round := range 20 {
			for name, list := range map[string]func(*Txn, string) ([]string, error){"Keys": inTxn, "AllKeys": pagedInTxn} {
				prefix := fmt.Sprintf("oncall%d%s:", round, name)
				putAll(t, c, []string{prefix + "alice", prefix + "bob"})
				res, err := phantomRound(ctx, c, prefix, list)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkPhantomRound(res); err != nil {
					t.Fatalf("round %d, %s: %v", round, name, err)
				}
				if keys, err := c.Keys(ctx, prefix); err != nil || len(keys) != 3 {
					t.Fatalf("round %d, %s: %q, %v after the round; want the two keys and the winner's", round, name, keys, err)
				}
			}
		}

		// The broken variant: counting outside the transactions lets both
		// commit, and the check says so.
		putAll(t, c, []string{"broken:alice", "broken:bob"})
		res, err := phantomRound(ctx, c, "broken:", outside)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPhantomRound(res); err == nil {
			t.Fatalf("the check accepted two transactions that counted outside themselves: %+v", res)
		}
	})
}

// TestUpdateKeepsPrefixBound: concurrent Updates each insert a key under a
// prefix only while it holds fewer than bound keys; with listings that are
// reads, the prefix never exceeds the bound.
func TestUpdateKeepsPrefixBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t, WithPoolSize(4))
		const workers, bound = 12, 5
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- c.Update(ctx, func(tx *Txn) error {
					keys, err := tx.Keys(ctx, "slot:")
					if err != nil || len(keys) >= bound {
						return err
					}
					return tx.Put(ctx, "slot:"+strconv.Itoa(w), "taken")
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if keys, err := c.Keys(ctx, "slot:"); err != nil || len(keys) != bound {
			t.Fatalf("Keys(slot:) = %q, %v; want exactly %d keys", keys, err, bound)
		}
	})
}
