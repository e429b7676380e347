package kvstore

import (
	"slices"
	"sync"
	"time"
)

// Expiry. A key may have an expiry time (unix nanoseconds, 0 for none),
// stored at the end of its record, which then has slotExpBit in its slot:
// keys without a time to live pay nothing for the feature.
//
// An expiry behaves as a deletion committed at the instant the key expires:
//
//   - reads compare the expiry time with the clock (Store.Get) or with the
//     time the snapshot was taken (Txn, listings), so a snapshot that
//     predates the instant still sees the key and a read after it never
//     does;
//   - a transaction remembers the earliest expiry time among the versions
//     it read; if its commit comes at or after that time, one of them was
//     deleted meanwhile and the commit conflicts;
//   - active expiry (below) later commits real deletions for expired keys,
//     through the normal commit path, to reclaim their memory without
//     anyone reading them.

// Clock tells the time. WithClock replaces the store's clock (time.Now),
// for tests that need to control time.
type Clock func() time.Time

// WithClock makes the store read the time from clock instead of time.Now.
// Expiry times are absolute (unix nanoseconds), so a clock that goes
// backwards delays expiries rather than breaking anything. A nil clock
// keeps time.Now.
func WithClock(clock Clock) StoreOption {
	return func(c *storeConfig) {
		if clock != nil {
			c.clock = clock
		}
	}
}

// now returns the store's time in unix nanoseconds.
func (s *Store) now() int64 {
	if s.cfg.clock == nil {
		return time.Now().UnixNano()
	}
	return s.cfg.clock().UnixNano()
}

// expired reports whether an expiry time exp (0: none) has passed at now.
func expired(exp, now int64) bool { return exp != 0 && exp <= now }

// deadline returns the expiry time ttl after now. It is never 0, which
// means no expiry.
func deadline(now int64, ttl time.Duration) int64 {
	exp := now + int64(ttl)
	if exp < now { // overflow: far enough in the future
		exp = 1<<63 - 1
	}
	if exp == 0 {
		exp = 1
	}
	return exp
}

// PutWithTTL sets key to value, as Put does, and makes it expire ttl from
// now: after that instant no read returns it, as if a Delete had been
// committed then, and active expiry reclaims its memory. A ttl of zero or
// less means no expiry (Put).
//
// On a store made by Open, the commit record holds the absolute expiry
// time, so the key expires at the same instant after a restart.
func (s *Store) PutWithTTL(key, value string, ttl time.Duration) error {
	ts, err := s.put(key, value, max(ttl, 0))
	if err != nil {
		return err
	}
	return s.waitDurable(ts)
}

// Expire makes key expire ttl from now, as a commit of its own, and reports
// whether the key exists. A ttl of zero or less deletes the key at once.
// Expire reads whether the key exists, like Delete; a later Put removes the
// time to live.
//
// Like Put, Expire is logged by a store made by Open (with the absolute
// expiry time) and, under SyncAlways, returns once the commit is synced.
func (s *Store) Expire(key string, ttl time.Duration) (existed bool, err error) {
	if ttl <= 0 {
		return s.Delete(key)
	}
	existed, ts, err := s.setExpiry(key, ttl, false)
	if err != nil {
		return existed, err
	}
	return existed, s.waitDurable(ts)
}

// Persist removes key's time to live, as a commit of its own, and reports
// whether the key exists. A key without one is left unchanged.
func (s *Store) Persist(key string) (existed bool, err error) {
	existed, ts, err := s.setExpiry(key, 0, true)
	if err != nil {
		return existed, err
	}
	return existed, s.waitDurable(ts)
}

// setExpiry replaces the expiry time of key's newest value, ttl from now,
// or removes it when persist is set, without waiting for the log. It
// returns the commit's timestamp, or 0 when it changed nothing.
func (s *Store) setExpiry(key string, ttl time.Duration, persist bool) (existed bool, ts uint64, err error) {
	h := s.hash(key)
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()
	now := s.now()
	sh := &s.shards[shardIndex(h)]
	sh.lock()
	defer sh.unlock()
	i := sh.t.find(key, h)
	if i < 0 || sh.t.ts(i)&tombstoneBit != 0 || expired(sh.t.exp(i), now) {
		return false, 0, nil
	}
	var exp int64
	if !persist {
		exp = deadline(now, ttl)
	} else if sh.t.exp(i) == 0 {
		return true, 0, nil // nothing to change
	}
	value := sh.t.value(i)
	if s.limited() && exp != 0 {
		if err := s.checkMemory(expRecordBytes(len(key), len(value), exp)); err != nil {
			return true, 0, err
		}
	}
	ts = o.committed.Load() + 1
	if s.dur != nil {
		if err := s.logPut(key, value, exp, ts); err != nil {
			return true, 0, err
		}
	}
	s.install(sh, key, h, value, exp, ts, s.activeForInstall())
	o.committed.Store(ts)
	return true, ts, nil
}

// TTL returns the time key has left to live, and whether it exists. A key
// without a time to live reports 0; one that has one always reports more.
func (s *Store) TTL(key string) (ttl time.Duration, ok bool) {
	h := s.hash(key)
	_, exp, ok := s.shards[shardIndex(h)].get(key, h)
	if !ok || exp == 0 {
		return 0, ok
	}
	if left := exp - s.now(); left > 0 {
		return time.Duration(left), true
	}
	return 0, false
}

// PutWithTTL sets key to value in the innermost level, as Put does, and
// makes it expire ttl after the outermost Commit publishes it. A ttl of
// zero or less means no expiry (Put). Like Put, it is a blind write.
func (t *Txn) PutWithTTL(key, value string, ttl time.Duration) error {
	if err := t.writable(); err != nil {
		return err
	}
	t.top().set(key, t.s.hash(key), write{val: value, ttl: max(ttl, 0)})
	return nil
}

// Expire makes key expire ttl after the outermost Commit publishes the
// transaction, and reports whether the key exists as this transaction sees
// it. A ttl of zero or less deletes the key (Delete). Like Delete, Expire
// reads whether the key exists, so a concurrent commit that changes key
// makes the outermost Commit fail with ErrConflict.
func (t *Txn) Expire(key string, ttl time.Duration) (existed bool, err error) {
	if ttl <= 0 {
		return t.Delete(key)
	}
	if err := t.writable(); err != nil {
		return false, err
	}
	v, _, ok := t.get(key)
	if ok {
		t.top().set(key, t.s.hash(key), write{val: v, ttl: ttl})
	}
	return ok, nil
}

// Persist removes key's time to live in the innermost level and reports
// whether the key exists as this transaction sees it. Like Expire, it reads
// the key.
func (t *Txn) Persist(key string) (existed bool, err error) {
	if err := t.writable(); err != nil {
		return false, err
	}
	v, ttl, ok := t.get(key)
	if ok && ttl != 0 {
		t.top().set(key, t.s.hash(key), write{val: v})
	}
	return ok, nil
}

// TTL returns the time key has left to live as this transaction sees it,
// and whether it exists: for the transaction's own write with a time to
// live, the full time to live (it runs from the commit); otherwise the
// time left when the snapshot was taken. 0 means no time to live. TTL
// reads the key, as Get does.
func (t *Txn) TTL(key string) (ttl time.Duration, ok bool) {
	_, ttl, ok = t.get(key)
	return ttl, ok
}

// Active expiry: a goroutine per store, running only while some key has a
// time to live, visits the tables a bounded number of slots at a time and
// commits deletions for the expired keys it finds, in small batches. Like
// Redis's expire cycle it repeats at once while a good share of what it
// visits has expired, and otherwise sleeps for expiryInterval.
const (
	expiryInterval  = 100 * time.Millisecond
	expiryScanSlots = 1 << 14 // slots visited per step
	expiryBatch     = 64      // deletions per hold of the oracle's lock
	expiryCycleMax  = 25 * time.Millisecond
)

// expiryState is the active expiry goroutine's state, guarded by
// s.oracle.mu except where noted.
type expiryState struct {
	ttlKeys int64 // newest versions with an expiry time
	// everTTL is set when the first version with an expiry time is
	// installed, and stays set: until then no snapshot needs the clock
	// (see Store.beginSnapshot).
	everTTL bool
	running bool // the goroutine is running
	closed  bool // Close was called: start no goroutine
	// held is set while Open recovers: the goroutine, which logs its
	// deletions, starts only once the log is open (releaseExpiry).
	held  bool
	stop  chan struct{} // closed by Close; nil once Close took it
	done  chan struct{} // closed by the goroutine when it ends
	shard int           // next shard to visit; guarded by mu
	slot  int           // next slot in it; guarded by mu
	mu    sync.Mutex    // serializes expireStep
}

// countTTL records that a key's newest version went from expiry time old to
// new (0: none), and starts active expiry when the first key gets one.
// Requires s.oracle.mu.
func (s *Store) countTTL(old, new int64) {
	switch {
	case old == 0 && new != 0:
		s.expiry.ttlKeys++
		s.expiry.everTTL = true
		s.startExpiryLocked()
	case old != 0 && new == 0:
		s.expiry.ttlKeys--
	}
}

// startExpiryLocked starts the active expiry goroutine unless it runs,
// the store is closed, or Open holds it. Requires s.oracle.mu.
func (s *Store) startExpiryLocked() {
	if !s.expiry.running && !s.expiry.closed && !s.expiry.held {
		s.expiry.running = true
		s.expiry.stop = make(chan struct{})
		s.expiry.done = make(chan struct{})
		go s.activeExpiry(s.expiry.stop, s.expiry.done)
	}
}

// releaseExpiry lets active expiry run (Open, once the log is open), and
// starts it if keys with a time to live were recovered.
func (s *Store) releaseExpiry() {
	s.oracle.mu.Lock()
	defer s.oracle.mu.Unlock()
	s.expiry.held = false
	if s.expiry.ttlKeys > 0 {
		s.startExpiryLocked()
	}
}

// stopExpiry stops active expiry for good and waits for its goroutine to
// end; Store.Close calls it first. Afterwards expired keys are still never
// returned, but only a deletion or overwrite reclaims them.
func (s *Store) stopExpiry() {
	s.oracle.mu.Lock()
	s.expiry.closed = true
	stop, done := s.expiry.stop, s.expiry.done
	s.expiry.stop = nil // a second Close must not close it again
	s.oracle.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// activeExpiry is the active expiry goroutine. It ends when the store is
// closed or no key has a time to live, so an abandoned store whose keys
// have all expired is not kept alive by it.
func (s *Store) activeExpiry(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	timer := time.NewTimer(expiryInterval)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		start := time.Now()
		for {
			withTTL, due := s.expireStep()
			if withTTL == 0 || due*4 < withTTL || time.Since(start) > expiryCycleMax {
				break // few expired keys here: wait for the next tick
			}
			select {
			case <-stop:
				return
			default:
			}
		}
		s.oracle.mu.Lock()
		if s.expiry.ttlKeys == 0 || s.expiry.closed {
			s.expiry.running = false
			s.oracle.mu.Unlock()
			return
		}
		s.oracle.mu.Unlock()
		timer.Reset(expiryInterval)
	}
}

// dueKey is an expired key found by a scan, with the expiry time it had.
type dueKey struct {
	key string
	exp int64
}

// expireStep visits up to expiryScanSlots slots, from where the previous
// step stopped, and deletes the expired keys among them. It returns how
// many slots holding a time to live it visited and how many were due.
func (s *Store) expireStep() (withTTL, due int) {
	s.expiry.mu.Lock()
	defer s.expiry.mu.Unlock()
	now := s.now()
	var found []dueKey
	first := s.expiry.shard
	for budget := expiryScanSlots; budget > 0; {
		sh := &s.shards[s.expiry.shard]
		sh.mu.RLock()
		slots := sh.t.slots
		end := min(len(slots), s.expiry.slot+budget)
		for i := s.expiry.slot; i < end; i++ {
			rec, meta := slots[i].rec, slots[i].meta
			if rec == nil || meta&slotExpBit == 0 {
				continue
			}
			withTTL++
			if exp := recExpiry(rec); exp <= now {
				// The key is a view of the record, which stays immutable
				// and alive while we hold it.
				found = append(found, dueKey{recKey(rec), exp})
			}
		}
		sh.mu.RUnlock()
		budget -= max(end-s.expiry.slot, 1)
		if end >= len(slots) {
			s.expiry.shard = (s.expiry.shard + 1) % numShards
			s.expiry.slot = 0
			if s.expiry.shard == first {
				break // one pass over every shard per step at most
			}
		} else {
			s.expiry.slot = end
		}
	}
	for len(found) > 0 {
		n := min(len(found), expiryBatch)
		s.expireKeys(found[:n])
		found = found[n:]
		due += n
	}
	return withTTL, due
}

// expireKeys commits the deletion of the keys that still hold the expired
// value a scan found, as one commit (logged, on a store made by Open, like
// a transaction's deletes).
func (s *Store) expireKeys(keys []dueKey) {
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()
	now := s.now()
	// Nothing changes the tables without the oracle's mutex: the keys
	// still due now are still due when the deletions install.
	var due []item[write]
	for i, d := range keys {
		if slices.ContainsFunc(keys[:i], func(o dueKey) bool { return o.key == d.key }) {
			continue // a step that wrapped around the shards saw it twice
		}
		h := s.hash(d.key)
		sh := &s.shards[shardIndex(h)]
		sh.mu.RLock()
		if i := sh.t.find(d.key, h); i >= 0 && sh.t.ts(i)&tombstoneBit == 0 && sh.t.exp(i) == d.exp && expired(d.exp, now) {
			due = append(due, item[write]{key: d.key, hash: h, val: write{del: true}})
		}
		sh.mu.RUnlock()
	}
	if len(due) == 0 {
		return
	}
	ts := o.committed.Load() + 1
	if s.dur != nil {
		if err := s.logCommit(due, ts, now); err != nil {
			return // the log failed or closed: the keys stay, unreadable
		}
	}
	active := s.activeForInstall()
	for _, d := range due {
		sh := &s.shards[shardIndex(d.hash)]
		sh.lock()
		s.installDelete(sh, d.key, d.hash, ts, active)
		sh.unlock()
	}
	s.live.Add(-int64(len(due)))
	o.committed.Store(ts)
}
