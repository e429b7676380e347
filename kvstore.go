package kvstore

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// numShards is the number of independently locked parts of the key space.
// A power of two, so that a shard is picked with a mask.
const numShards = 256

// MaxTxnDepth is the most levels a transaction may have: the outermost one
// plus MaxTxnDepth-1 nested ones. Txn.Begin past it returns ErrTxnTooDeep.
const MaxTxnDepth = 1024

// MaxUpdateAttempts is how many times Store.Update runs its function before
// it gives up on conflicts and returns ErrConflict.
const MaxUpdateAttempts = 100

// Store is an in-memory key-value store with serializable transactions. It is
// safe for concurrent use by any number of goroutines. The zero value is not
// usable; create one with New.
//
// Single-key methods (Get, Put, Delete) are atomic and linearizable; Put and
// Delete are commits in their own right and conflict with transactions that
// read the key. Begin, Update and View run transactions: see Txn.
type Store struct {
	seed   maphash.Seed
	shards [numShards]shard
	oracle oracle
	live   atomic.Int64 // number of keys that hold a value
	cfg    storeConfig
	// txnMem is what open transactions have reserved for their buffers
	// (see MemoryUsage; the rest is oracle.mem).
	txnMem atomic.Int64
	// dur is the directory, log and compaction of a store made by Open;
	// nil for an in-memory store.
	dur *durability
	// sweepers counts the goroutines trimming what ended snapshots pinned.
	sweepers sync.WaitGroup
	expiry   expiryState // see expiry.go
}

// New returns an empty in-memory Store, configured by opts.
func New(opts ...StoreOption) *Store {
	cfg := defaultStoreConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s := &Store{seed: maphash.MakeSeed(), cfg: cfg}
	for i := range s.shards {
		s.shards[i].t.seed = s.seed
		s.shards[i].t.mem = &s.oracle.mem
	}
	return s
}

// hash returns the hash of key that picks its shard and identifies it in a
// transaction's read and write sets.
func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) }

func shardIndex(h uint64) int { return int(h & (numShards - 1)) }

// Get returns the value of key and whether it exists. A key whose time to
// live has run out does not exist. Get never blocks on transactions,
// allocates nothing and does not retain key.
func (s *Store) Get(key string) (value string, ok bool) {
	h := s.hash(key)
	value, exp, ok := s.shards[shardIndex(h)].get(key, h)
	if exp != 0 && ok && expired(exp, s.now()) {
		return "", false
	}
	return value, ok
}

// getDep is Get that also returns the timestamp of the commit that the
// answer reveals, the one a response showing it must wait for under
// SyncAlways (see shard.getDep).
func (s *Store) getDep(key string) (value string, dep uint64, ok bool) {
	h := s.hash(key)
	value, exp, dep, ok := s.shards[shardIndex(h)].getDep(key, h)
	if exp != 0 && ok && expired(exp, s.now()) {
		return "", dep, false
	}
	return value, dep, ok
}

// readAt returns the value of key, whose hash is h, in the snapshot at
// readTs taken at time now, and its expiry time.
func (s *Store) readAt(key string, h, readTs uint64, now int64) (string, int64, bool) {
	sh := &s.shards[shardIndex(h)]
	if v, exp, ok, known := sh.getAt(key, h, readTs); known {
		return v, exp, ok && !expired(exp, now)
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e, found := sh.load(key, h)
	if !found {
		return "", 0, false
	}
	return e.readAt(readTs, now)
}

// changedSince reports whether a commit after readTs wrote key, whose hash
// is h. Requires s.oracle.mu.
func (s *Store) changedSince(key string, h, readTs uint64) bool {
	sh := &s.shards[shardIndex(h)]
	if sh.lastCommit <= readTs {
		return false // nothing in the shard changed
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i := sh.t.find(key, h)
	if i < 0 {
		// A tombstone newer than the snapshot may have been removed.
		return sh.collected[collectBucket(h)] > readTs
	}
	return sh.t.ts(i)&^tombstoneBit > readTs
}

// Put sets key to value, as a commit of its own. The store copies both
// strings (into one allocation), so the caller may reuse their memory.
// It returns an error only when the store cannot take the write (see the
// errors in errors.go: ErrTooLarge, ErrMemoryLimit); then nothing was
// applied.
//
// On a store made by Open, Put also appends the commit to the log; under
// SyncAlways it returns once the commit is synced. It returns an error
// wrapping ErrLogFailed or ErrClosed when the log cannot take the write
// (then nothing was applied), or when the sync failed (then the write is
// applied in memory but may not survive a crash).
//
// Put removes any time to live the key had: the new value never expires.
// PutWithTTL sets one.
func (s *Store) Put(key, value string) error {
	ts, err := s.put(key, value, 0)
	if err != nil {
		return err
	}
	return s.waitDurable(ts)
}

// put is Put with a time to live (0: none), without waiting for the log;
// it returns the commit's timestamp.
func (s *Store) put(key, value string, ttl time.Duration) (uint64, error) {
	if err := checkRecordSize(len(key), len(value)); err != nil {
		return 0, err
	}
	h := s.hash(key)
	var exp int64
	if ttl > 0 {
		exp = deadline(s.now(), ttl)
	}
	// The record is made before the locks: the critical section, which
	// every writer of the store takes in turn, only links it in.
	rec := newRecord(key, value, exp)
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()
	sh := &s.shards[shardIndex(h)]
	sh.lock()
	defer sh.unlock()
	if s.limited() {
		if err := s.checkMemory(expRecordBytes(len(key), len(value), int64(ttl)) + orderedKeyBytes(len(key)) + sh.t.growthBytes()); err != nil {
			return 0, err
		}
	}
	ts := o.committed.Load() + 1
	if s.dur != nil {
		if err := s.logPut(key, value, exp, ts); err != nil {
			return 0, err
		}
	}
	if s.installRecord(sh, key, h, rec, exp, ts, s.activeForInstall()) {
		s.live.Add(1)
	}
	o.committed.Store(ts)
	return ts, nil
}

// Delete removes key, as a commit of its own, and reports whether it existed.
// Deleting a missing key changes nothing. It returns an error only when the
// store cannot take the write (see the errors in errors.go); then nothing
// was applied.
//
// On a store made by Open, Delete logs and waits as Put does.
func (s *Store) Delete(key string) (existed bool, err error) {
	existed, ts, err := s.del(key)
	if err != nil {
		return existed, err
	}
	return existed, s.waitDurable(ts)
}

// del is Delete without waiting for the log; it returns the commit's
// timestamp, 0 if there was no commit.
func (s *Store) del(key string) (existed bool, ts uint64, err error) {
	h := s.hash(key)
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()
	sh := &s.shards[shardIndex(h)]
	sh.lock()
	defer sh.unlock()
	if holds, exp := sh.valueExpiry(key, h); !holds || exp != 0 && expired(exp, s.now()) {
		return false, 0, nil
	}
	ts = o.committed.Load() + 1
	if s.dur != nil {
		if err := s.logDelete(key, ts); err != nil {
			return false, 0, err
		}
	}
	s.installDelete(sh, key, h, ts, s.activeForInstall())
	s.live.Add(-1)
	o.committed.Store(ts)
	return true, ts, nil
}

// Len returns the number of keys that hold a value.
func (s *Store) Len() int {
	return int(s.live.Load())
}

// activeForInstall returns the read timestamps of open snapshots, ascending,
// or nil when there are none. Requires s.oracle.mu.
func (s *Store) activeForInstall() []uint64 {
	if len(s.oracle.snapshots) == 0 {
		return nil
	}
	return s.oracle.activeLocked()
}

// install makes value, expiring at exp (0: never), the newest version of
// key at ts and reports whether the key did not hold a value before. Requires s.oracle.mu and sh.mu.
func (s *Store) install(sh *shard, key string, h uint64, value string, exp int64, ts uint64, active []uint64) (added bool) {
	return s.installRecord(sh, key, h, newRecord(key, value, exp), exp, ts, active)
}

// installRecord is install with the new version's record already made
// (newRecord(key, value, exp)). Requires s.oracle.mu and sh.mu.
func (s *Store) installRecord(sh *shard, key string, h uint64, rec unsafe.Pointer, exp int64, ts uint64, active []uint64) (added bool) {
	sh.lastCommit = checkTs(ts)
	i := sh.t.find(key, h)
	if i < 0 {
		sh.t.setRecord(sh.t.insert(key, h), rec, h, ts, exp != 0)
		s.oracle.mem.Add(expRecordBytes(len(key), len(recValue(rec)), exp))
		s.countTTL(0, exp)
		return true
	}
	if len(active) == 0 && len(sh.hist) == 0 {
		// The common case: no open snapshot, and the key keeps no
		// history, so the old version just goes.
		old, meta := sh.t.slots[i].rec, sh.t.slots[i].meta
		oldExp := slotExpiry(old, meta)
		s.countTTL(oldExp, exp)
		sh.t.setRecord(i, rec, h, ts, exp != 0)
		keyLen := recKeyLen(rec)
		if d := expRecordBytes(keyLen, len(recValue(rec)), exp) - expRecordBytes(keyLen, len(recValue(old)), oldExp); d != 0 {
			s.oracle.mem.Add(d)
		}
		return meta&slotTombBit != 0
	}
	e, before := sh.accountedEntryAt(i)
	added = e.deleted()
	s.countTTL(e.exp, exp)
	e.push(recValue(rec), exp, ts, active)
	sh.t.setRecord(i, rec, h, e.ts, exp != 0)
	s.keepHistory(sh, i, h, e, active, before)
	return added
}

// installDelete makes a tombstone the newest version of key at ts, or drops
// the key when no open snapshot can tell the difference. The key must exist.
// Requires s.oracle.mu and sh.mu.
func (s *Store) installDelete(sh *shard, key string, h, ts uint64, active []uint64) {
	sh.lastCommit = checkTs(ts)
	sh.lastDelete.Store(ts)
	i := sh.t.find(key, h)
	e, before := sh.accountedEntryAt(i)
	s.countTTL(e.exp, 0)
	e.push("", 0, ts|tombstoneBit, active)
	sh.t.set(i, key, "", h, e.ts, 0)
	s.keepHistory(sh, i, h, e, active, before)
}

// checkTs panics if ts does not fit a slot: it would take a century of ten
// million commits a second.
func checkTs(ts uint64) uint64 {
	if ts > maxTs {
		panic("kvstore: commit timestamps exhausted")
	}
	return ts
}

// keepHistory stores what the key in slot i, whose hash is h, keeps for
// open snapshots after it changed (e, trimmed for active), and pins it for
// their owners. A lone tombstone is removed from the table unless an open
// snapshot predates it and the shard still has room for kept tombstones;
// removed early, it marks its group (see shard.collected). before is the
// key's footprint before the change, for the memory account. Requires
// s.oracle.mu and sh.mu.
func (s *Store) keepHistory(sh *shard, i int, h uint64, e entry, active []uint64, before int64) {
	key := sh.t.key(i)
	after := int64(0)
	if !s.settleHistory(sh, i, key, h, e, active) {
		_, hasHistory := sh.historyOf(key)
		after = footprint(len(key), e, hasHistory)
	}
	if after != before {
		s.oracle.mem.Add(after - before)
	}
}

// settleHistory is keepHistory but for the memory account; key is the key
// in slot i. It reports whether it removed the key from the table.
func (s *Store) settleHistory(sh *shard, i int, key string, h uint64, e entry, active []uint64) (removed bool) {
	prev, had := sh.historyOf(key)
	wasKept := had && prev.older == nil
	neededBy := len(active) > 0 && active[0] < e.commitTs() // a snapshot predates the newest version
	switch {
	case e.older != nil:
		sh.setHistory(key, history{older: e.older}, true)
		for v := e.older; v != nil; v = v.older {
			s.oracle.pinLocked(key, v.owner, &s.oracle.mem)
		}
	case !e.deleted():
		sh.setHistory(key, history{}, false)
	case neededBy && (wasKept || sh.keptTombs < maxKeptTombstones):
		owner, _ := newestIn(active, 0, e.commitTs())
		sh.setHistory(key, history{keptFor: owner}, true)
		s.oracle.pinLocked(key, owner, &s.oracle.mem)
		if wasKept && prev.keptFor != owner {
			s.oracle.unpinLocked(key, prev.keptFor, &s.oracle.mem)
		}
		return false
	default:
		if neededBy {
			sh.markCollected(h, e.commitTs())
		}
		sh.setHistory(key, history{}, false)
		sh.t.remove(i)
		removed = true
	}
	if wasKept && !ownsVersion(e.older, prev.keptFor) {
		s.oracle.unpinLocked(key, prev.keptFor, &s.oracle.mem)
	}
	return removed
}

// ownsVersion reports whether the snapshot at readTs owns a version in the
// history older.
func ownsVersion(older *version, readTs uint64) bool {
	for v := older; v != nil; v = v.older {
		if v.owner == readTs {
			return true
		}
	}
	return false
}

// sweepBatch is how many keys sweep trims per hold of the oracle's mutex.
const sweepBatch = 256

// trimPinned trims the keys pinned by a snapshot that ended (see sweep):
// at once when they fit one batch, else on a goroutine of its own that ends
// with the sweep. The caller, who may be an event loop serving many
// clients, thus never waits for a long sweep, while a steady stream of
// small transactions sweeps inline and starts no goroutines.
func (s *Store) trimPinned(pinned map[string]struct{}) {
	if len(pinned) <= sweepBatch {
		s.sweep(pinned)
		return
	}
	s.sweepers.Add(1)
	go func() {
		defer s.sweepers.Done()
		s.sweep(pinned)
	}()
}

// sweep trims the history of the keys pinned by a snapshot that ended: they
// may keep versions that no open snapshot can see any more. It takes the
// oracle's mutex for sweepBatch keys at a time, so that however many keys
// the snapshot pinned, other commits wait for one batch at most. pinned is
// the ended snapshot's, no longer shared.
func (s *Store) sweep(pinned map[string]struct{}) {
	if len(pinned) == 0 {
		return
	}
	batch := make([]string, 0, min(len(pinned), sweepBatch))
	for key := range pinned {
		batch = append(batch, key)
		if len(batch) == sweepBatch {
			s.sweepKeys(batch)
			batch = batch[:0]
		}
	}
	s.sweepKeys(batch)
}

// sweepKeys trims the history of keys for the snapshots open now.
func (s *Store) sweepKeys(keys []string) {
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()
	active := s.activeForInstall()
	for _, key := range keys {
		s.sweepKey(key, active)
		o.mem.Add(-pinnedBytes(key)) // the ended snapshot's set is garbage
	}
}

// sweepKey trims the history of key for active. Requires s.oracle.mu.
func (s *Store) sweepKey(key string, active []uint64) {
	h := s.hash(key)
	sh := &s.shards[shardIndex(h)]
	sh.lock()
	defer sh.unlock()
	i := sh.t.find(key, h)
	if i < 0 {
		return
	}
	if _, ok := sh.historyOf(key); !ok {
		return // trimmed since by a write
	}
	e, before := sh.accountedEntryAt(i)
	e.trim(active)
	s.keepHistory(sh, i, h, e, active, before)
}

// Begin starts a transaction whose reads see the store as it is now, plus the
// transaction's own writes. End it with Commit or Rollback: an open
// transaction keeps alive the versions its snapshot can see.
func (s *Store) Begin() *Txn {
	t := &Txn{s: s}
	t.levels = t.levelBuf[:1]
	txnBufferPool.Get().(*txnBuffers).attach(t)
	t.readTs, t.now = s.beginSnapshot()
	return t
}

// beginSnapshot registers a new snapshot and returns its read timestamp
// and the time it was taken (for expiry: see expiry.go). The time is read
// with the timestamp, under the oracle's mutex, so that the snapshot sees
// exactly the expiries that the commits before it saw. A store in which no
// version ever had an expiry time skips the clock (0): every version a
// snapshot can see then has none, and the time is never looked at.
func (s *Store) beginSnapshot() (readTs uint64, now int64) {
	s.oracle.mu.Lock()
	defer s.oracle.mu.Unlock()
	if s.expiry.everTTL {
		now = s.now()
	}
	return s.oracle.beginLocked(), now
}

// Update runs fn in a new transaction and commits it. If fn returns an error,
// the transaction is rolled back and Update returns that error. If the commit
// conflicts, Update runs fn again in a fresh transaction, up to
// MaxUpdateAttempts times in all, so fn must be safe to repeat. Nested levels
// that fn leaves open are committed with the rest; fn must not end the
// outermost level itself (Update then returns ErrTxnClosed).
func (s *Store) Update(fn func(*Txn) error) error {
	var err error
	for attempt := 0; attempt < MaxUpdateAttempts; attempt++ {
		err = s.updateOnce(fn)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("kvstore: update gave up after %d attempts: %w", MaxUpdateAttempts, err)
}

func (s *Store) updateOnce(fn func(*Txn) error) error {
	t := s.Begin()
	defer t.discard()
	if err := fn(t); err != nil {
		return err
	}
	return t.commitAll()
}

// View runs fn in a read-only transaction: every read sees one snapshot of
// the store, taken when View is called. Put and Delete on it return
// ErrTxnReadOnly. View returns fn's error.
func (s *Store) View(fn func(*Txn) error) error {
	t := s.Begin()
	t.readOnly = true
	defer t.discard()
	return fn(t)
}
