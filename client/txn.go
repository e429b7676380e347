package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// MaxUpdateAttempts is how many times Update runs its function before it
// gives up on conflicts (the same bound as kvstore.Store.Update).
const MaxUpdateAttempts = 100

// Txn is a transaction on the server (START ... COMMIT), with the
// semantics of the embedded kvstore.Txn: reads see the transaction's own
// writes and otherwise one snapshot taken at Begin; Begin on a Txn opens a
// nested level that Commit folds into the enclosing one and Rollback
// discards; only the outermost Commit publishes anything, and it fails
// with an error matching ErrConflict when another client changed a key
// this transaction read.
//
// A Txn holds one connection of the Client until its outermost level ends.
// It is not safe for concurrent use (like kvstore.Txn). When one of its
// calls fails with a network error or an ended context, the Txn cannot know
// what the server did with that request, so it ends: its connection is
// closed, the server rolls the transaction back, and later calls return
// ErrTxnClosed. (A Commit that fails that way may or may not have been
// applied.)
type Txn struct {
	c        *Client
	cn       *conn // nil once ended
	depth    int
	readOnly bool
}

// Begin starts a transaction. End it with Commit or Rollback: until then it
// holds a connection, and the server keeps the versions its snapshot sees.
func (c *Client) Begin(ctx context.Context) (*Txn, error) {
	for {
		cn, reused, err := c.txnConn(ctx)
		if err != nil {
			return nil, err
		}
		err = expectOk(cn.roundTrip(ctx, request("START")))
		if err == nil {
			return &Txn{c: c, cn: cn, depth: 1}, nil
		}
		var se *ServerError
		if errors.As(err, &se) {
			se.Cmd = "START"
			c.releaseTxnConn(cn)
			return nil, err
		}
		cn.close(err)
		// An idle connection may have been closed by the server (idle
		// timeout, restart) before its reader noticed. START on a fresh
		// connection is safe to repeat: if the old one executed it, the
		// server rolls that transaction back as the connection closes.
		if !reused || ctxErr(ctx) != nil {
			return nil, err
		}
	}
}

// Depth returns the number of open levels: 1 for a transaction without
// nesting, 0 once the outermost level has ended.
func (t *Txn) Depth() int { return t.depth }

// exec runs a request on the transaction's connection; an error other than
// an Error response ends the transaction.
func (t *Txn) exec(ctx context.Context, _ string, cl *call) (response, error) {
	if t.cn == nil {
		putCall(cl)
		return response{}, ErrTxnClosed
	}
	resp, err := t.cn.roundTrip(ctx, cl)
	if err != nil {
		t.abandon(err)
		return response{}, err
	}
	return resp, nil
}

// abandon ends the transaction by closing its connection: the server rolls
// back whatever it has.
func (t *Txn) abandon(err error) {
	if t.cn != nil {
		t.cn.close(err)
		t.cn = nil
	}
	t.depth = 0
}

// end returns the connection of a transaction whose outermost level ended
// cleanly.
func (t *Txn) end() {
	t.c.releaseTxnConn(t.cn)
	t.cn = nil
	t.depth = 0
}

func (t *Txn) writable() error {
	if t.cn == nil {
		return ErrTxnClosed
	}
	if t.readOnly {
		return ErrTxnReadOnly
	}
	return nil
}

// Get returns the value of key as this transaction sees it. A missing key
// is an error matching ErrNotFound. The read counts for the conflict check
// of the outermost Commit.
func (t *Txn) Get(ctx context.Context, key string) (string, error) {
	return doGet(ctx, t, key)
}

// Put sets key to value in the innermost level. Nothing is visible to
// other clients before the outermost Commit. A Put is a blind write: it
// does not make the commit conflict.
func (t *Txn) Put(ctx context.Context, key, value string) error {
	if err := t.writable(); err != nil {
		return err
	}
	return doPut(ctx, t, key, value)
}

// Delete removes key in the innermost level and reports whether it existed
// as this transaction saw it. It counts as a read of key.
func (t *Txn) Delete(ctx context.Context, key string) (existed bool, err error) {
	if err := t.writable(); err != nil {
		return false, err
	}
	return doDelete(ctx, t, key)
}

// Expire sets key's time to live in this transaction (see Client.Expire).
func (t *Txn) Expire(ctx context.Context, key string, ttl time.Duration) error {
	if err := t.writable(); err != nil {
		return err
	}
	return doExpire(ctx, t, key, ttl)
}

// TTL returns key's time to live as this transaction sees it (see
// Client.TTL).
func (t *Txn) TTL(ctx context.Context, key string) (time.Duration, error) {
	return doTTL(ctx, t, key)
}

// Persist removes key's time to live in this transaction (see
// Client.Persist).
func (t *Txn) Persist(ctx context.Context, key string) error {
	if err := t.writable(); err != nil {
		return err
	}
	return doPersist(ctx, t, key)
}

// Keys lists the keys that start with prefix as this transaction sees
// them: its snapshot plus its own writes (see Client.Keys). The listing
// counts as a read of the whole prefix range: the outermost Commit
// conflicts if another client created, changed or deleted a matching key
// meanwhile.
func (t *Txn) Keys(ctx context.Context, prefix string) ([]string, error) {
	return doKeys(ctx, t, prefix)
}

// KeysPage is Client.KeysPage inside the transaction: every page comes
// from the same snapshot (plus the transaction's writes).
func (t *Txn) KeysPage(ctx context.Context, prefix, after string, limit int) (keys []string, more bool, err error) {
	return doKeysPage(ctx, t, prefix, after, limit)
}

// AllKeys is Client.AllKeys inside the transaction: every page comes from
// the same snapshot (plus the transaction's writes).
func (t *Txn) AllKeys(ctx context.Context, prefix string, pageSize int) iter.Seq2[string, error] {
	return allKeys(ctx, t, prefix, pageSize)
}

// Begin opens a nested level. Its writes are seen by this transaction at
// once; the level's Commit folds them into the enclosing level, its
// Rollback discards only them. Past the server's nesting limit it returns
// an error matching ErrTxnTooDeep and the transaction stays as it was.
func (t *Txn) Begin(ctx context.Context) error {
	if t.cn == nil {
		return ErrTxnClosed
	}
	if _, err := run(ctx, t, "START", request("START")); err != nil {
		return err
	}
	t.depth++
	return nil
}

// Commit ends the innermost level. A nested level's writes fold into the
// enclosing level. The outermost Commit publishes every write at one
// instant, or fails with an error matching ErrConflict (or ErrOutOfMemory)
// and applies nothing; either way the transaction has ended and its
// connection goes back to the Client.
func (t *Txn) Commit(ctx context.Context) error {
	return t.finish(ctx, "COMMIT")
}

// Rollback ends the innermost level and discards its writes. Rolling back
// the outermost level ends the transaction.
func (t *Txn) Rollback(ctx context.Context) error {
	return t.finish(ctx, "ROLLBACK")
}

func (t *Txn) finish(ctx context.Context, cmd string) error {
	if t.cn == nil {
		return ErrTxnClosed
	}
	_, err := run(ctx, t, cmd, request(cmd))
	if t.cn == nil { // a network error or ctx ended the transaction
		return err
	}
	if err != nil && (t.depth > 1 || isServer(err, ErrNoTransaction)) {
		// The server and this Txn disagree about the transaction (or a
		// nested level failed to end): start over on a fresh connection.
		t.abandon(err)
		return err
	}
	// The outermost level ends whether COMMIT succeeded or not (a conflict
	// or a refused write rolls the transaction back).
	t.depth--
	if t.depth == 0 {
		t.end()
	}
	return err
}

// discard ends whatever levels the transaction still has, rolling them
// back; a failure closes the connection, which rolls back too.
func (t *Txn) discard(ctx context.Context) {
	if t.cn == nil {
		return
	}
	if ctx.Err() != nil {
		t.abandon(ctx.Err())
		return
	}
	for t.cn != nil && t.depth > 0 {
		if err := t.Rollback(ctx); err != nil && t.cn != nil {
			t.abandon(err)
		}
	}
}

// commitAll commits every open level, innermost first.
func (t *Txn) commitAll(ctx context.Context) error {
	if t.cn == nil {
		return ErrTxnClosed
	}
	for t.depth > 0 {
		if err := t.Commit(ctx); err != nil {
			t.discard(ctx)
			return err
		}
	}
	return nil
}

// Update runs fn in a new transaction and commits it (every level fn left
// open). If fn returns an error, the transaction is rolled back and Update
// returns that error. If the commit conflicts, Update runs fn again in a
// fresh transaction, up to MaxUpdateAttempts times in all, so fn must be
// safe to repeat; it then returns the last conflict, wrapped. fn must not
// end the outermost level itself (Update then returns ErrTxnClosed).
func (c *Client) Update(ctx context.Context, fn func(*Txn) error) error {
	var err error
	for attempt := 0; attempt < MaxUpdateAttempts; attempt++ {
		err = c.updateOnce(ctx, fn)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("client: update gave up after %d attempts: %w", MaxUpdateAttempts, err)
}

func (c *Client) updateOnce(ctx context.Context, fn func(*Txn) error) error {
	t, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		t.discard(ctx)
		return err
	}
	return t.commitAll(ctx)
}

// View runs fn in a read-only transaction: every read sees one snapshot,
// taken when View is called. Put, Delete, Expire and Persist on it return
// ErrTxnReadOnly without sending anything. The transaction is rolled back
// afterwards (a read-only transaction never conflicts). View returns fn's
// error.
func (c *Client) View(ctx context.Context, fn func(*Txn) error) error {
	t, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	t.readOnly = true
	defer t.discard(ctx)
	return fn(t)
}
