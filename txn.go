package kvstore

import "time"

// Txn is a transaction: a snapshot of the store to read from, a buffer of
// writes, and the set of keys read, checked for conflicts at commit. It may
// be nested: Begin opens a level, and Commit and Rollback end the innermost
// one. Only the outermost Commit publishes anything.
//
// A Txn belongs to one goroutine (one client) at a time; it is not safe for
// concurrent use. Different transactions are independent and never wait for
// one another.
type Txn struct {
	s        *Store
	readTs   uint64
	now      int64 // the clock when the snapshot was taken, unix nanoseconds
	readOnly bool

	// minExp is the earliest expiry time of the versions the transaction
	// read (0: none): once it has passed, one of them has expired since
	// the snapshot, and the commit conflicts.
	minExp int64
	// ranges are the key ranges the transaction listed; see keyRange.
	ranges []keyRange

	// levels holds the writes of each open level, outermost first.
	// len(levels) is the depth; nil once the outermost level has ended.
	levels   []keyed[write]
	levelBuf [2]keyed[write]

	// reads is the set of keys whose snapshot value (or absence) the
	// transaction observed; the outermost Commit fails if any of them has
	// been changed by a commit after readTs. The keys are copies, made in
	// arena, so callers may reuse the memory of the keys they pass.
	reads keyed[struct{}]
	arena keyArena

	// bufs is recycled memory that levels[0], reads and arena start in,
	// and the account of what the transaction's buffers hold.
	bufs *txnBuffers

	// commitTs is the timestamp of the outermost commit, once made.
	// noWait makes that commit return without waiting for the log (the
	// Session waits once per batch instead).
	commitTs uint64
	noWait   bool
}

// write is one buffered write: a value, or a deletion. A value with a ttl
// expires ttl after the commit that publishes it.
type write struct {
	val string
	del bool
	ttl time.Duration
}

// Depth returns the number of open levels: 1 for a transaction without
// nesting, 0 once the outermost level has ended.
func (t *Txn) Depth() int { return len(t.levels) }

// Get returns the value of key as this transaction sees it: its own latest
// write of key if any, else the value in its snapshot. After the transaction
// has ended, Get reports every key missing. Get does not retain key.
func (t *Txn) Get(key string) (value string, ok bool) {
	value, _, ok = t.get(key)
	return value, ok
}

// get is Get that also returns the key's time to live: the buffered one
// for the transaction's own write, else the time left at the snapshot.
func (t *Txn) get(key string) (value string, ttl time.Duration, ok bool) {
	if len(t.levels) == 0 {
		return "", 0, false
	}
	h := t.s.hash(key)
	if w, found := t.ownWrite(key, h); found {
		return w.val, w.ttl, !w.del
	}
	t.recordRead(key, h)
	v, exp, ok := t.s.readAt(key, h, t.readTs, t.now)
	if !ok {
		return "", 0, false
	}
	if exp != 0 {
		t.sawExpiry(exp)
		ttl = time.Duration(exp - t.now)
	}
	return v, ttl, true
}

// sawExpiry records that the transaction read a version expiring at exp.
func (t *Txn) sawExpiry(exp int64) {
	if !t.readOnly && (t.minExp == 0 || exp < t.minExp) {
		t.minExp = exp
	}
}

// ownWrite returns the innermost buffered write of key.
func (t *Txn) ownWrite(key string, h uint64) (write, bool) {
	for i := len(t.levels) - 1; i >= 0; i-- {
		if j := t.levels[i].find(key, h); j >= 0 {
			return t.levels[i].items[j].val, true
		}
	}
	return write{}, false
}

func (t *Txn) recordRead(key string, h uint64) {
	if t.readOnly {
		return // a read-only transaction never conflicts
	}
	if t.reads.find(key, h) < 0 {
		t.account(readBytes+int64(len(key)), false) // reads are never refused
		t.reads.set(t.arena.clone(key), h, struct{}{})
	}
}

// Put sets key to value in the innermost level. Nothing is visible to others
// until the outermost Commit. The transaction keeps both strings. Put is a
// blind write: it does not make the commit conflict. A key or value too long
// for the store is refused at once with ErrTooLarge, and a write that would
// take the store past its memory limit (see WithMaxMemory) with
// ErrMemoryLimit: nothing is buffered, and the transaction stays open.
func (t *Txn) Put(key, value string) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := checkRecordSize(len(key), len(value)); err != nil {
		return err
	}
	top, h := t.top(), t.s.hash(key)
	cost := writeBytes + int64(len(key)+len(value))
	if j := top.find(key, h); j >= 0 {
		cost = int64(len(value) - len(top.items[j].val.val)) // replaces a write
	}
	if err := t.account(cost, true); err != nil {
		return err
	}
	top.set(key, h, write{val: value})
	return nil
}

// account adds n bytes to what t's buffers hold, reserving more of the
// store's account when needed. When check is set and the store has a limit
// that n more bytes would pass, it adds nothing and returns an error
// wrapping ErrMemoryLimit.
func (t *Txn) account(n int64, check bool) error {
	b := t.bufs
	if n <= 0 {
		b.mem += n // a smaller value replaced a larger one
		return nil
	}
	if check && t.s.limited() {
		// What is reserved but unused is not in use.
		if err := t.s.checkMemory(n - (b.reserved - b.mem)); err != nil {
			return err
		}
	}
	if b.mem+n > b.reserved {
		more := max(txnReserve, b.mem+n-b.reserved)
		t.s.txnMem.Add(more)
		b.reserved += more
	}
	b.mem += n
	return nil
}

// Delete removes key in the innermost level and reports whether it existed
// as this transaction sees it. Deleting a missing key changes nothing. Delete
// reads whether the key exists, so a concurrent commit that changes key makes
// the outermost Commit fail with ErrConflict.
func (t *Txn) Delete(key string) (existed bool, err error) {
	if err := t.writable(); err != nil {
		return false, err
	}
	if _, existed = t.Get(key); existed {
		t.account(writeBytes+int64(len(key)), false) // deletes are never refused
		t.top().set(key, t.s.hash(key), write{del: true})
	}
	return existed, nil
}

func (t *Txn) writable() error {
	switch {
	case len(t.levels) == 0:
		return ErrTxnClosed
	case t.readOnly:
		return ErrTxnReadOnly
	}
	return nil
}

// top returns the write buffer of the innermost level.
func (t *Txn) top() *keyed[write] {
	return &t.levels[len(t.levels)-1]
}

// Begin opens a nested level. Its writes are seen by this transaction at
// once; Rollback discards only them, and Commit folds them into the enclosing
// level.
func (t *Txn) Begin() error {
	switch {
	case len(t.levels) == 0:
		return ErrTxnClosed
	case len(t.levels) >= MaxTxnDepth:
		return ErrTxnTooDeep
	}
	t.levels = append(t.levels, keyed[write]{})
	return nil
}

// Commit ends the innermost level. A nested level's writes fold into the
// enclosing level; that never fails. The outermost Commit publishes every
// write at one instant, all or nothing, and ends the transaction: it returns
// an error wrapping ErrConflict, and applies nothing, when a key the
// transaction read was changed by another commit after its snapshot, and
// one wrapping ErrMemoryLimit when its puts would take the store past its
// memory limit (see WithMaxMemory).
func (t *Txn) Commit() error {
	switch len(t.levels) {
	case 0:
		return ErrTxnClosed
	case 1:
		return t.commitAndWait()
	}
	t.foldTop()
	return nil
}

// foldTop merges the innermost level's writes into the enclosing level.
func (t *Txn) foldTop() {
	n := len(t.levels)
	inner := t.levels[n-1]
	t.levels[n-1] = keyed[write]{}
	t.levels = t.levels[:n-1]
	parent := &t.levels[n-2]
	if parent.len() == 0 {
		*parent = inner
		return
	}
	for _, it := range inner.items {
		parent.set(it.key, it.hash, it.val)
	}
}

// commitAll folds every open level and commits the transaction.
func (t *Txn) commitAll() error {
	if len(t.levels) == 0 {
		return ErrTxnClosed
	}
	for len(t.levels) > 1 {
		t.foldTop()
	}
	return t.commitAndWait()
}

// commitAndWait commits the outermost level and, on a durable store under
// SyncAlways, waits for the commit to be synced (unless noWait).
func (t *Txn) commitAndWait() error {
	if err := t.s.commit(t); err != nil {
		return err
	}
	if t.noWait {
		return nil
	}
	return t.s.waitDurable(t.commitTs)
}

// Rollback ends the innermost level and discards its writes. Rolling back
// the outermost level ends the transaction; nothing of it is applied.
func (t *Txn) Rollback() error {
	switch len(t.levels) {
	case 0:
		return ErrTxnClosed
	case 1:
		t.s.end(t)
		return nil
	}
	n := len(t.levels)
	t.levels[n-1] = keyed[write]{}
	t.levels = t.levels[:n-1]
	return nil
}

// discard ends the transaction if it is still open.
func (t *Txn) discard() {
	if len(t.levels) > 0 {
		t.s.end(t)
	}
}
