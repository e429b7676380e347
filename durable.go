package kvstore

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// Errors of a durable store (see Open).
var (
	// ErrLogFailed is wrapped by the error of every write to a durable
	// store after writing or syncing its log failed (a full disk, an I/O
	// error): the store then takes no more writes and acknowledges
	// nothing, since what the failed sync covered may not be on disk.
	// Reads keep working on a store used directly; the server closes
	// connections whose responses would reveal a commit that is not
	// durable. Restart (Close, Open) once the disk is fixed: recovery
	// keeps what the log holds.
	ErrLogFailed = wal.ErrFailed

	// ErrClosed is wrapped by the error of every write to a durable store
	// after Close.
	ErrClosed = wal.ErrClosed
)

// durability is the part of a Store made by Open: its directory, the
// commit log and compaction.
type durability struct {
	fs   wal.FS
	dir  string
	lock io.Closer
	log  *wal.Log

	compactMu    sync.Mutex  // one compaction at a time
	startMu      sync.Mutex  // orders starting background compactions with Close
	compacting   atomic.Bool // an automatic compaction is running
	compactions  sync.WaitGroup
	lastSnapSize atomic.Int64  // size of the newest snapshot
	lastSnapTs   atomic.Uint64 // its timestamp
	lastSnapUnix atomic.Int64  // when it was written (Unix seconds); 0: no snapshot
	compacted    atomic.Uint64 // compactions that wrote a snapshot since Open
	closed       atomic.Bool

	// ackEarly is a deliberate bug for tests: commits do not wait for
	// the log under SyncAlways.
	ackEarly bool
	// revealBug is a deliberate bug for tests of what a response waits
	// for under SyncAlways (see Session.reveals).
	revealBug revealBug
}

// revealBug names the deliberate bugs of durability.revealBug.
type revealBug int

const (
	revealRight revealBug = iota // no bug
	// revealNoneOfReads: a GET waits for nothing, even when it shows
	// another client's commit that is not synced yet.
	revealNoneOfReads
	// revealAllPublished: every response waits for the newest commit
	// published, even one it does not show (the behaviour before
	// responses knew what they reveal).
	revealAllPublished
)

// syncAlways reports whether commits wait for the log (SyncAlways).
func (s *Store) syncAlways() bool { return s.dur != nil && s.cfg.sync == SyncAlways }

// waitDurable makes sure the commit at ts may be acknowledged: under
// SyncAlways it waits until the commit is synced; under the other modes
// it hands the commit to the operating system (wal.Log.Write) unless that
// is done already, so that a crash of the process alone loses nothing
// acknowledged. In memory it returns at once.
func (s *Store) waitDurable(ts uint64) error {
	if s.dur == nil || ts == 0 {
		return nil
	}
	if !s.syncAlways() {
		return s.dur.log.Write(ts)
	}
	if s.dur.ackEarly {
		return nil
	}
	return s.dur.log.WaitDurable(ts)
}

// logged returns the newest commit a response may reveal or acknowledge:
// synced under SyncAlways, handed to the operating system under the other
// modes. Requires a durable store.
func (s *Store) logged() uint64 {
	if s.syncAlways() {
		return s.dur.log.Durable()
	}
	return s.dur.log.Written()
}

// loggedOrErr reports, without waiting, whether the commit at ts is as
// far as logged requires; if it never will be (the log failed or closed),
// it returns the error. Requires a durable store.
func (s *Store) loggedOrErr(ts uint64) (bool, error) {
	if s.syncAlways() {
		return s.dur.log.DurableOrErr(ts)
	}
	return s.dur.log.WrittenOrErr(ts)
}

// logPut appends the commit record of a single put at ts, expiring at exp
// (0: never). Requires s.oracle.mu.
func (s *Store) logPut(key, value string, exp int64, ts uint64) error {
	buf, off, err := s.dur.log.BeginRecord()
	if err != nil {
		return err
	}
	buf = wal.AppendCommitHeader(buf, ts, 1)
	buf = wal.AppendPut(buf, key, value, exp)
	s.dur.log.EndRecord(buf, off, ts)
	return nil
}

// logDelete appends the commit record of a single delete at ts. Requires
// s.oracle.mu.
func (s *Store) logDelete(key string, ts uint64) error {
	buf, off, err := s.dur.log.BeginRecord()
	if err != nil {
		return err
	}
	buf = wal.AppendCommitHeader(buf, ts, 1)
	buf = wal.AppendDelete(buf, key)
	s.dur.log.EndRecord(buf, off, ts)
	return nil
}

// logCommit appends the commit record of a transaction's writes at ts; a
// write with a time to live expires that long after now, as install makes
// it. Requires s.oracle.mu.
func (s *Store) logCommit(writes []item[write], ts uint64, now int64) error {
	buf, off, err := s.dur.log.BeginRecord()
	if err != nil {
		return err
	}
	buf = wal.AppendCommitHeader(buf, ts, len(writes))
	for _, w := range writes {
		if w.val.del {
			buf = wal.AppendDelete(buf, w.key)
		} else {
			var exp int64
			if w.val.ttl > 0 {
				exp = deadline(now, w.val.ttl)
			}
			buf = wal.AppendPut(buf, w.key, w.val.val, exp)
		}
	}
	s.dur.log.EndRecord(buf, off, ts)
	return nil
}

// errOutOfOrder is wrapped by the error of apply for a record that does not
// come next in commit order.
var errOutOfOrder = errors.New("commit record out of order")

// apply installs a commit record: the one path by which recovery (and,
// later, a replication follower) changes the store. The record must be
// the next commit: its timestamp one more than the last one published.
// Like a commit, it installs every write with the shards it touches
// locked, so that readers see all of it or nothing.
func (s *Store) apply(c *wal.Commit) error {
	o := &s.oracle
	o.mu.Lock()
	defer o.mu.Unlock()
	if want := o.committed.Load() + 1; c.TS != want {
		return fmt.Errorf("%w: timestamp %d, expected %d", errOutOfOrder, c.TS, want)
	}
	var locked [numShards / 64]uint64
	defer func() {
		// Only the locked shards: a loop over all of them cost a
		// recovery of single-key records 256 tests per record.
		for w, set := range locked {
			for ; set != 0; set &= set - 1 {
				s.shards[w*64+bits.TrailingZeros64(set)].unlock()
			}
		}
	}()
	for _, w := range c.Writes {
		i := shardIndex(s.hash(w.Key))
		if locked[i/64]&(1<<(i%64)) == 0 {
			locked[i/64] |= 1 << (i % 64)
			s.shards[i].lock()
		}
	}
	active := s.activeForInstall()
	var delta int64
	for _, w := range c.Writes {
		h := s.hash(w.Key)
		sh := &s.shards[shardIndex(h)]
		switch {
		case !w.Delete:
			if s.install(sh, w.Key, h, w.Value, w.ExpireAt, c.TS, active) {
				delta++
			}
		case sh.holdsValue(w.Key, h):
			s.installDelete(sh, w.Key, h, c.TS, active)
			delta--
		}
	}
	s.live.Add(delta)
	o.committed.Store(c.TS)
	return nil
}

// Close ends a store made by Open: it waits for a running compaction,
// writes and syncs every commit the log holds (whatever the SyncMode),
// and releases the directory. Writes after Close fail with an error
// wrapping ErrClosed. It returns the log's failure if writing it failed.
// On a store made by New, Close only stops background work.
//
// On every store, Close also stops active expiry (see Store.Expire): it
// ends the store's background goroutines, which a store that is dropped
// without Close keeps only while some key has a time to live.
func (s *Store) Close() error {
	s.stopExpiry()
	s.sweepers.Wait() // no goroutine of the store outlives Close
	d := s.dur
	if d == nil {
		return nil
	}
	d.startMu.Lock()
	already := d.closed.Swap(true)
	d.startMu.Unlock()
	if already {
		return nil
	}
	d.compactMu.Lock() // no compaction starts or runs from here
	err := d.log.Close()
	d.compactMu.Unlock()
	d.compactions.Wait()
	if lerr := d.lock.Close(); err == nil {
		err = lerr
	}
	return err
}
