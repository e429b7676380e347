package wal

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Mode says when the Log forces written records to disk.
type Mode int

const (
	// SyncEach syncs every batch of records before it counts as durable:
	// one write and one fsync per batch (group commit).
	SyncEach Mode = iota
	// SyncInterval syncs at most once per Options.Interval.
	SyncInterval
	// SyncNone leaves syncing to the operating system (and Close).
	SyncNone
)

// Errors of the Log.
var (
	// ErrFailed is wrapped by every error after a write or sync of the
	// log failed: from then on the Log takes no record (what the failed
	// sync covered may or may not be on disk, so nothing after it is
	// acknowledged; see PostgreSQL's "fsyncgate").
	ErrFailed = errors.New("commit log failed")
	// ErrClosed is returned for records offered after Close.
	ErrClosed = errors.New("commit log closed")
)

// Options configure a Log.
type Options struct {
	FS   FS
	Dir  string
	Mode Mode
	// Interval is SyncInterval's period.
	Interval time.Duration
	// OnWrite, if set, is called by the writer after each batch with the
	// number of log bytes written since the last rotation.
	OnWrite func(sinceRotation int64)
	// OlderBytes is the size of the segments before the open one that
	// are still on disk (see Log.Bytes).
	OlderBytes int64
	// Reserve is how many bytes of zeros the writer keeps written and
	// synced ahead of the records of the open segment (0: none; see
	// reserve.go).
	Reserve int64
}

// Log is the commit log writer: callers append framed records to an
// in-memory buffer (BeginRecord, EndRecord), in commit order. Under
// SyncEach, one writer goroutine writes the whole buffer with one write
// and one fsync (group commit), and WaitDurable waits for a record to be
// synced. Under SyncInterval and SyncNone, whoever needs its records on
// their way to disk hands the buffer to the operating system itself
// (Write: one write system call for every record buffered so far, as
// Redis writes its AOF buffer before it answers), and the writer
// goroutine only syncs once per interval and writes what nobody wrote.
type Log struct {
	opts Options

	// wmu serializes writing: taking the buffer and writing it to f, in
	// order, and switching segments. Taken before mu.
	wmu sync.Mutex
	// fclosed is set once the writer closed f for good. Requires wmu.
	fclosed bool
	// smu serializes syncs under SyncEach: the writer's batches and
	// callers' Sync each write and sync with it held, so that durable
	// only grows and f stays open and in place during a sync. Taken
	// before wmu.
	smu sync.Mutex

	mu      sync.Mutex
	durCond sync.Cond // broadcast when durable or failure changes
	buf     []byte    // framed records not yet taken by the writer
	spare   []byte
	lastTs  uint64 // timestamp of the last record appended (buffered or not)
	kicked  bool   // a wake-up for the writer is pending
	// Group commit under SyncEach (see run): records counts the records
	// in buf; expect is how many the writer waits for, for at most a
	// window, before it writes them; windowOpen is set while it waits.
	records    int
	expect     int
	windowOpen bool
	// selfSyncers counts the callers that sync the records they need
	// themselves (SyncsItself): while there are any, EndRecord does not
	// wake the writer. Changed under mu.
	selfSyncers atomic.Int32
	rot         *rotation
	// segFirst is the first timestamp of the segment records go to.
	segFirst uint64
	failure  error       // sticky: wraps ErrFailed
	failed   atomic.Bool // failure != nil, read without mu
	closed   bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	// waiters are told when durable passes what they want (see Waiter);
	// replaced, never changed in place, under mu.
	waiters atomic.Pointer[[]*Waiter]

	durable  atomic.Uint64 // records up to this timestamp are synced
	written  atomic.Uint64 // records up to this timestamp are written
	size     atomic.Int64  // bytes in the current segment
	sinceRot atomic.Int64  // bytes written since the last rotation
	older    atomic.Int64  // bytes of the segments before the current one
	// reserved is the offset up to which the open segment holds zeros
	// written ahead of its records (see reserve); set under wmu.
	reserved atomic.Int64
	// reserveStopped is set by the writer once writing zeros ahead
	// failed (a full disk): it reserves no more.
	reserveStopped bool

	// f is the open segment: written under wmu; replaced and closed only
	// by the writer goroutine, under wmu.
	f File
}

type rotation struct {
	off     int
	firstTs uint64
	done    chan error
}

// NewLog starts a Log appending to f, the open last segment of
// opts.Dir, whose first timestamp is segFirst, which holds size bytes
// (header included) and records up to timestamp lastTs, all durable.
func NewLog(opts Options, f File, size int64, segFirst, lastTs uint64) *Log {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	l := &Log{opts: opts, f: f, segFirst: segFirst, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.durCond.L = &l.mu
	l.lastTs = lastTs
	l.durable.Store(lastTs)
	l.written.Store(lastTs)
	l.size.Store(size)
	l.sinceRot.Store(size)
	l.older.Store(opts.OlderBytes)
	go l.run()
	return l
}

// BeginRecord locks the log's buffer and returns it with a frame header
// reserved at off; the caller appends one record's payload and must call
// EndRecord. The caller calls them in commit-timestamp order (under the
// store's commit mutex). After a failure or Close, it returns the error
// and the buffer stays unlocked.
func (l *Log) BeginRecord() (buf []byte, off int, err error) {
	l.mu.Lock()
	if err := l.errLocked(); err != nil {
		l.mu.Unlock()
		return nil, 0, err
	}
	buf, off = BeginFrame(l.buf)
	return buf, off, nil
}

// maxUnwritten is how many bytes of records the buffer holds, under
// SyncInterval and SyncNone, before EndRecord wakes the writer to write
// them although nobody asked (Write).
const maxUnwritten = 1 << 20

// EndRecord finishes the record begun at off for commit timestamp ts and
// unlocks the buffer. Under SyncEach it wakes the writer, unless a caller
// syncs itself (SyncsItself); under the other modes the record waits for
// a Write (or the writer's next interval, or a full buffer).
func (l *Log) EndRecord(buf []byte, off int, ts uint64) {
	FinishFrame(buf, off)
	l.buf, l.lastTs = buf, ts
	l.records++
	switch {
	case l.opts.Mode != SyncEach && len(buf) < maxUnwritten:
	case l.windowOpen && l.records >= l.expect:
		l.windowOpen = false
		l.kicked = true
		select {
		case l.kick <- struct{}{}:
		default:
		}
	case l.opts.Mode == SyncEach && l.selfSyncers.Load() > 0 && len(buf) < maxUnwritten:
		// A caller syncs what it needs; whoever else waits wakes the
		// writer (WaitDurable, Waiter.Want).
	default:
		l.wakeWriterLocked()
	}
	l.mu.Unlock()
}

// Write hands the records up to timestamp ts (and every record buffered
// with them) to the operating system, from the calling goroutine, unless
// that is done already: a crash of the process no longer loses them, a
// crash of the machine may until they are synced. It returns an error
// wrapping ErrFailed if the log failed first, ErrClosed if it closed
// without them. While the writer switches segments, Write waits for it
// to write them instead.
func (l *Log) Write(ts uint64) error {
	if l.written.Load() >= ts {
		return nil
	}
	handOff, n, _, err := l.writeOut(ts)
	if handOff {
		return l.waitFor(&l.written, ts)
	}
	if err == nil && n > 0 && l.opts.OnWrite != nil {
		l.opts.OnWrite(l.sinceRot.Load())
	}
	return err
}

// writeOut writes every buffered record to the segment from the calling
// goroutine (one write system call), unless the records up to ts are
// written already. It returns how many bytes it wrote and the timestamp
// up to which records are written. handOff reports that the writer
// goroutine must do it instead (a segment switch is pending, the log
// failed, or the segment is closed); the writer has been woken.
func (l *Log) writeOut(ts uint64) (handOff bool, n int, written uint64, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if w := l.written.Load(); w >= ts {
		return false, 0, w, nil
	}
	l.mu.Lock()
	if l.failure != nil || l.rot != nil || l.fclosed {
		if l.failure == nil {
			l.wakeWriterLocked()
		}
		l.mu.Unlock()
		return true, 0, 0, nil
	}
	buf, last := l.buf, l.lastTs
	l.buf, l.spare = l.spare[:0], nil
	l.records = 0
	l.mu.Unlock()

	err = l.writeBytes(buf)

	l.mu.Lock()
	if cap(buf) <= 4<<20 {
		l.spare = buf[:0]
	}
	l.mu.Unlock()
	if failure := l.settle(&l.written, last, err); failure != nil {
		l.notify(true)
		return false, len(buf), 0, failure
	}
	if l.reserveLow() {
		l.mu.Lock()
		l.wakeWriterLocked()
		l.mu.Unlock()
	}
	return false, len(buf), last, nil
}

// settle records the outcome of a write or sync that took the log to
// timestamp ts: err, if not nil, fails the log; otherwise point
// (l.written or l.durable) advances to ts. It wakes the goroutines in
// waitFor and returns the log's failure, if any.
func (l *Log) settle(point *atomic.Uint64, ts uint64, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.fail(err)
	}
	if l.failure == nil {
		point.Store(ts)
	}
	l.durCond.Broadcast()
	return l.failure
}

// wakeWriterLocked wakes the writer goroutine unless a wake-up is
// pending. Requires mu.
func (l *Log) wakeWriterLocked() {
	if !l.kicked {
		l.kicked = true
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// waitFor waits until point (l.written or l.durable) reaches ts, and
// returns the error that means it never will: the log's failure, or
// ErrClosed once the writer has ended.
func (l *Log) waitFor(point *atomic.Uint64, ts uint64) error {
	if point.Load() >= ts {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for point.Load() < ts {
		if err := l.unreachableLocked(); err != nil {
			return err
		}
		l.durCond.Wait()
	}
	return nil
}

// reachedOrErr reports, without waiting, whether point (l.written or
// l.durable) has reached ts; if not, it returns the error waitFor would.
func (l *Log) reachedOrErr(point *atomic.Uint64, ts uint64) (bool, error) {
	if point.Load() >= ts {
		return true, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if point.Load() >= ts {
		return true, nil
	}
	return false, l.unreachableLocked()
}

// unreachableLocked returns why a point that has not reached a record yet
// never will, or nil if it still may. Requires mu.
func (l *Log) unreachableLocked() error {
	switch {
	case l.failure != nil:
		return l.failure
	case l.closed && l.isDone():
		return ErrClosed
	}
	return nil
}

// Written returns the timestamp up to which records are written (handed
// to the operating system).
func (l *Log) Written() uint64 { return l.written.Load() }

// WrittenOrErr is DurableOrErr for written records (see Write).
func (l *Log) WrittenOrErr(ts uint64) (bool, error) { return l.reachedOrErr(&l.written, ts) }

// fail makes err, wrapped in ErrFailed, the log's failure unless it
// failed already. Requires mu.
func (l *Log) fail(err error) {
	if l.failure == nil {
		l.failure = fmt.Errorf("%w: %v", ErrFailed, err)
		l.failed.Store(true)
	}
}

// Failed reports whether a write or sync of the log failed (see
// ErrFailed), without waiting.
func (l *Log) Failed() bool { return l.failed.Load() }

// Err returns the error that makes the log refuse records, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errLocked()
}

func (l *Log) errLocked() error {
	if l.failure != nil {
		return l.failure
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

// Durable returns the timestamp up to which records are synced.
func (l *Log) Durable() uint64 { return l.durable.Load() }

// Size returns the size of the current segment in bytes, and the bytes
// written since the last rotation (the current segment).
func (l *Log) Size() int64 { return l.size.Load() }

// Bytes returns the size of the log on disk: the current segment and
// the segments before it that ForgetOlder has not dropped.
func (l *Log) Bytes() int64 { return l.older.Load() + l.size.Load() }

// ForgetOlder tells the log that the segments before the current one
// have been removed (a snapshot covers them): Bytes counts only the
// current segment from now on.
func (l *Log) ForgetOlder() { l.older.Store(0) }

// WaitDurable waits until the record of timestamp ts (and all before it)
// is synced. It returns an error wrapping ErrFailed if the log failed
// first.
func (l *Log) WaitDurable(ts uint64) error {
	if l.durable.Load() >= ts {
		return nil
	}
	l.wakeForWaiter()
	return l.waitFor(&l.durable, ts)
}

func (l *Log) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Rotate makes the records appended from now on go to a new segment
// whose first timestamp is firstTs; call it in commit order (under the
// store's commit mutex), when the next commit will have firstTs. The
// returned channel receives the result once the old segment is synced
// and closed and the new one created.
func (l *Log) Rotate(firstTs uint64) <-chan error {
	done := make(chan error, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.errLocked(); err != nil {
		done <- err
		return done
	}
	if l.rot != nil {
		done <- errors.New("wal: rotation already pending")
		return done
	}
	if firstTs == l.segFirst {
		done <- nil // the segment holds nothing before firstTs
		return done
	}
	l.segFirst = firstTs
	l.rot = &rotation{off: len(l.buf), firstTs: firstTs, done: done}
	if !l.kicked {
		l.kicked = true
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return done
}

// Close stops taking records, writes and syncs every record taken, and
// closes the segment. It returns the log's failure, if it failed.
func (l *Log) Close() error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already {
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failure
}

// run is the writer goroutine.
func (l *Log) run() {
	defer func() {
		close(l.done)
		l.notify(true) // DurableOrErr now answers every waiter for good
	}()
	var tick <-chan time.Time
	if l.opts.Mode != SyncEach {
		// SyncInterval syncs on ticks; both write on ticks what no
		// Write wrote.
		t := time.NewTicker(l.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	l.reserve()
	lastSync := time.Now()
	var window *time.Timer // group commit window (SyncEach)
	var syncTook time.Duration
	skipWindows := 0 // batches left to write without a window
	for {
		closing := false
		select {
		case <-l.kick:
		case <-tick:
		case <-l.stop:
			closing = true
		}
		if l.opts.Mode == SyncEach && !closing {
			if window == nil {
				window = time.NewTimer(time.Hour)
				window.Stop()
				defer window.Stop()
			}
			if wait, ok := l.windowFor(syncTook, skipWindows > 0); !ok {
				l.reserve() // (woken by writeOut for that, perhaps)
				continue    // nothing to write
			} else if wait > 0 {
				window.Reset(wait)
				select {
				case <-l.kick:
				case <-window.C:
					if l.windowMissed() {
						skipWindows = windowSkips + 1
					}
				case <-l.stop:
					closing = true
				}
				window.Stop()
			}
			skipWindows = max(skipWindows-1, 0)
		}
		if l.writeBatch(closing, &lastSync, &syncTook) {
			return
		}
		l.reserve()
	}
}

// writeBatch is one round of the writer: it writes what is buffered
// (switching segments if a rotation is pending), syncs it if the mode says
// it is due, tells the waiters, and on closing closes the segment. It
// reports whether the writer is done. Files are written under wmu; the
// sync runs after it, so that Write does not wait for a sync (only the
// writer replaces or closes f, so the sync's file stays open).
func (l *Log) writeBatch(closing bool, lastSync *time.Time, syncTook *time.Duration) (done bool) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.wmu.Lock()
	l.mu.Lock()
	buf, ts, rot, failure := l.buf, l.lastTs, l.rot, l.failure
	records := l.records
	l.buf, l.spare, l.rot, l.kicked = l.spare[:0], nil, nil, false
	l.records, l.windowOpen = 0, false
	l.mu.Unlock()

	var err error
	if failure == nil {
		err = l.write(buf, rot)
	} else if rot != nil {
		err = failure
	}
	l.mu.Lock()
	if cap(buf) <= 4<<20 {
		l.spare = buf[:0]
	}
	if err != nil {
		l.fail(err)
	}
	if l.failure == nil {
		l.written.Store(ts)
	}
	written := l.written.Load()
	l.durCond.Broadcast()
	l.mu.Unlock()
	if !closing {
		l.wmu.Unlock()
	}

	due := l.opts.Mode == SyncEach || closing ||
		l.opts.Mode == SyncInterval && time.Since(*lastSync) >= l.opts.Interval
	if err == nil && due && written > l.durable.Load() {
		start := time.Now()
		if err = l.f.Sync(); err == nil {
			*lastSync = time.Now()
			*syncTook = lastSync.Sub(start)
		}
	}

	l.mu.Lock()
	if err != nil {
		l.fail(err)
	}
	if l.failure == nil && err == nil && due {
		l.durable.Store(written)
	}
	// The writers of this batch are told now; those waiting for an
	// answer come back with their next commits. The next batch
	// waits for them and for the records that came meanwhile.
	l.expect = records + l.records
	l.durCond.Broadcast()
	failed := l.failure != nil
	l.mu.Unlock()
	l.notify(failed)
	if rot != nil {
		rot.done <- err
	}
	if l.opts.OnWrite != nil && err == nil && len(buf) > 0 {
		l.opts.OnWrite(l.sinceRot.Load())
	}
	if !closing {
		return false
	}
	cerr := l.f.Close()
	l.fclosed = true
	l.wmu.Unlock()
	l.mu.Lock()
	if cerr != nil {
		l.fail(cerr)
	}
	l.durCond.Broadcast()
	l.mu.Unlock()
	return true
}

// write writes buf to the segment, switching segments at rot.
func (l *Log) write(buf []byte, rot *rotation) error {
	if rot == nil {
		return l.writeBytes(buf)
	}
	if err := l.writeBytes(buf[:rot.off]); err != nil {
		return err
	}
	// The old segment ends whole and synced, whatever the mode.
	if err := l.f.Sync(); err != nil {
		return err
	}
	if err := l.f.Close(); err != nil {
		return err
	}
	name := Join(l.opts.Dir, SegmentName(rot.firstTs))
	f, err := l.opts.FS.Create(name)
	if err != nil {
		return err
	}
	l.f = f
	l.older.Add(l.size.Load())
	l.size.Store(0)
	l.reserved.Store(0)
	l.sinceRot.Store(0)
	if err := l.writeBytes(AppendFileHeader(nil, KindLog)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := l.opts.FS.SyncDir(l.opts.Dir); err != nil {
		return err
	}
	return l.writeBytes(buf[rot.off:])
}

func (l *Log) writeBytes(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := l.f.WriteAt(b, l.size.Load())
	l.size.Add(int64(n))
	l.sinceRot.Add(int64(n))
	return err
}
