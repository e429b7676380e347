//go:build linux

package kvstore

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/kvd-dev/kvstore/internal/uring"
)

// How an event loop batches its sockets' reads and writes (issue 12).
//
// On the virtual machines we measure on, a system call costs about a
// microsecond just to enter and leave the kernel (BenchmarkNullSyscall in
// internal/uring), and a request at pipeline depth 1
// costs a read and a write: Redis pays the same two calls, and they were
// three quarters of the loop's time. With io_uring a loop reads from every
// connection that epoll reported readable in one io_uring_enter, and, at
// the end of the round, writes every connection's responses in another:
// the same reads and writes, done by the kernel in a row, with one entry
// into it for the round instead of two per connection. Every operation
// carries MSG_DONTWAIT, so none is ever parked in the kernel: a socket
// with no room (or no data) completes at once with EAGAIN, and the loop
// then waits for EPOLLOUT as it would after a short write(2).
//
// A round with a single connection to read from or write to makes the
// plain read(2) or write(2) (one call either way). Without io_uring (an
// old kernel, kernel.io_uring_disabled, a seccomp filter, or
// WithIOUring(false)) every read and write is a plain system call.
//
// The input a batch read for a connection waits, until that connection's
// turn in the round, in the part of the loop's read buffer after the part
// a turn reads into by itself (a connection with held lines reads during
// its turn, not in the batch). The responses of a round stay in the
// loop's output arena (or in the connection's own buffer) until the
// batch is submitted, and a
// connection has at most one send in a batch. So the batch is submitted
// before the loop blocks in epoll_wait, before it serves a connection
// that has a send queued, before it closes a connection, and before it
// waits for the commit log.

const (
	// outArenaBytes is the size of a loop's output arena: the responses
	// of one round, for all its connections, until they are sent.
	outArenaBytes = 256 << 10
	// outArenaMinLend is the least room a connection's turn is given in
	// the arena: a turn produces at most turnOutputBytes and one more
	// response. With less room left, the round's sends go first.
	outArenaMinLend = turnOutputBytes + 16<<10
	// readArenaBytes is the part of a loop's read buffer for its batches
	// of reads: each of the round's k reads gets readArenaBytes/k bytes of
	// it (at most maxReadBuffer, and 4 KiB with loopEvents connections).
	readArenaBytes = loopEvents * 4 << 10
)

// batchIO is a loop's io_uring state.
type batchIO struct {
	ring    *uring.Ring
	res     []int32     // results of a batch, by index
	sends   []*loopConn // connections with a send queued (pend)
	reads   []*loopConn // scratch: the connections of a batch of reads
	arena   []byte      // the output arena
	used    int         // bytes of the arena that queued sends point into
	failed  bool        // a batch failed: batching ends with the round's batches
	lending bool        // the arena's free part is lent to a turn (see lend)

	// For tests: io_uring_enter calls made for batches of sends and of
	// receives, and the operations they carried.
	sendBatches, sendOps, readBatches, readOps atomic.Int64
}

// newBatchIO sets up io_uring for a loop, or returns nil if the kernel
// does not allow it.
func newBatchIO() (*batchIO, error) {
	r, err := uring.New(loopEvents)
	if err != nil {
		return nil, err
	}
	return &batchIO{
		ring:  r,
		res:   make([]int32, r.Cap()),
		arena: make([]byte, outArenaBytes),
	}, nil
}

// lend returns an empty buffer for a connection's responses: the loop's
// shared one, or, when sends are batched, the free part of the arena.
func (l *eventLoop) lend() []byte {
	b := l.batch
	if b == nil {
		return l.out[:0]
	}
	if len(b.arena)-b.used < outArenaMinLend {
		l.submitSends()
	}
	b.lending = true
	return b.arena[b.used:b.used]
}

// keepLent deals with the lent buffer out after c's turn: when its
// responses were queued for the batch of sends, they stay where they are
// until then, and the arena's free part starts after them; when they wait
// for the log, they are copied to c's own buffer.
func (l *eventLoop) keepLent(c *loopConn, out []byte) {
	if l.batch == nil {
		c.queued = false
		if len(out) > 0 {
			c.out = append([]byte(nil), out...)
		}
		if cap(out) <= keepOutBytes {
			l.out = out[:0]
		}
		return
	}
	b := l.batch
	b.lending = false
	if c.queued {
		inArena := unsafe.SliceData(out) == unsafe.SliceData(b.arena[b.used:])
		if inArena {
			b.used += len(out)
		}
		l.queueSend(c, out, !inArena)
		return
	}
	if len(out) > 0 {
		c.out = append([]byte(nil), out...)
	}
}

// keepOwn deals with c's own output buffer after its turn, as keepLent.
func (l *eventLoop) keepOwn(c *loopConn, out []byte) {
	switch {
	case c.queued:
		c.out = nil
		l.queueSend(c, out, true)
	case len(out) == 0:
		c.out = nil
	default:
		c.out = out
	}
}

// queueSend makes p, c's responses of this turn, its send in the round's
// batch; own says p's array is c's alone (not the arena).
func (l *eventLoop) queueSend(c *loopConn, p []byte, own bool) {
	c.queued = false
	c.pend, c.pendOwn = p, own
	l.batch.sends = append(l.batch.sends, c)
}

// deferSend, called by flush, marks c's output to be sent with the
// round's batch. It reports false when the loop does not batch sends.
func (l *eventLoop) deferSend(c *loopConn) bool {
	if l.batch == nil {
		return false
	}
	c.queued = true
	return true
}

// submitSends sends the queued responses of the round, in one
// io_uring_enter (or one write(2) if there is a single one), and deals
// with what each socket did not take.
func (l *eventLoop) submitSends() {
	b := l.batch
	if b == nil || len(b.sends) == 0 {
		return
	}
	sends := b.sends
	b.sends = nil // completions may release connections, which submit
	// The sends are made now: one clock read for the latency of all the
	// requests they answer.
	sentAt := time.Since(l.start)
	live := 0
	for _, c := range sends {
		if c.pend == nil || c.released {
			c.pend = nil
			continue
		}
		live++
		// Counted before the responses go out, so that a client that
		// has its response finds its request counted.
		if n := c.sess.executed - c.observed; n > 0 {
			l.latency.observe(sentAt-c.readAt, n)
			c.observed = c.sess.executed
		}
	}
	if live == 1 {
		for _, c := range sends {
			if c.pend != nil {
				l.sent(c, l.writeNow(c.fd, c.pend))
			}
		}
	} else if live > 1 {
		for i := 0; i < len(sends); {
			// The batch reuses sends from i on: each append overwrites an
			// entry the loop has already looked at.
			batch := sends[i:i]
			for ; i < len(sends) && b.ring.Queued() < b.ring.Cap(); i++ {
				if c := sends[i]; c.pend != nil {
					b.ring.Send(c.fd, c.pend)
					batch = append(batch, c)
				}
			}
			if len(batch) == 0 {
				continue
			}
			b.sendBatches.Add(1)
			b.sendOps.Add(int64(len(batch)))
			l.complete(batch, b.ring.Submit(b.res), l.sent)
		}
	}
	if !b.lending { // (a turn never submits while it holds the arena)
		b.used = 0
	}
	clear(sends)
	if b.sends == nil {
		b.sends = sends[:0]
	}
	l.dropFailedBatch()
}

// complete hands each connection of a submitted batch its result. If the
// batch failed as a whole, what each operation did is unknown (a send may
// have gone out, a receive may have taken input): every result is EIO
// (uring.Ring.Submit), which closes the connection, and the loop goes on
// without io_uring.
func (l *eventLoop) complete(batch []*loopConn, err error, done func(*loopConn, int)) {
	b := l.batch
	if err != nil && !b.failed {
		b.failed = true
		l.srv.log.Warn("kvd event loop: io_uring failed; closing the connections of the batch, and making plain reads and writes from now on", "err", err)
	}
	for i, c := range batch {
		done(c, int(b.res[i]))
	}
}

// dropFailedBatch turns batching off for good after a failed batch.
func (l *eventLoop) dropFailedBatch() {
	if b := l.batch; b != nil && b.failed && len(b.sends) == 0 {
		b.ring.Close()
		l.batch = nil
		l.out = nil
		l.batchOff.Store(true)
	}
}

// errnoOf is err's errno, or EIO.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// writeNow is one write(2) of p on fd, with its result as a batch would
// give it: the byte count or a negated errno.
func (l *eventLoop) writeNow(fd int, p []byte) int {
	for {
		n, err := rawWrite(fd, p)
		if err == nil {
			return n
		}
		if err != syscall.EINTR {
			return -int(errnoOf(err))
		}
	}
}

// sent deals with the result of c's queued send: the socket took res
// bytes (res >= 0) or failed (-errno). What it did not take becomes c's
// unsent output, for EPOLLOUT.
func (l *eventLoop) sent(c *loopConn, res int) {
	p, own := c.pend, c.pendOwn
	c.pend = nil
	l.writes.Add(1)
	if c.released {
		return
	}
	n := max(res, 0)
	if n > 0 {
		c.sess.counts.bytesOut.Add(uint64(n))
		c.writeAt = l.now + l.srv.cfg.writeTimeout // progress
	}
	if n == len(p) {
		return
	}
	if res < 0 && res != -int(syscall.EAGAIN) && res != -int(syscall.EINTR) {
		l.release(c, false, "write: "+syscall.Errno(-res).Error())
		return
	}
	rest := p[n:]
	if own {
		c.out = p[:copy(p, rest)]
	} else {
		c.out = append([]byte(nil), rest...)
	}
	c.full = true
	l.sync(c)
	if !c.released {
		if m := int64(cap(c.in) + cap(c.out)); m != c.mem.Load() {
			l.srv.account(c.serverConn, m)
		}
	}
}

// readAll reads, in one io_uring_enter, from every connection among the
// round's n events that its turn will read from (see serve), each into
// its share of the loop's read buffer; serve then uses what was read
// (readFrom). With fewer than two such connections it does nothing, and
// serve reads as usual.
func (l *eventLoop) readAll(n int) {
	b := l.batch
	if b == nil || n < 2 {
		return
	}
	reads := b.reads[:0]
	for i := range n {
		ev := &l.events[i]
		if ev.Fd == int32(l.evfd) || ev.Events&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			continue
		}
		if c := l.conns[ev.Fd]; c != nil && c.willRead() {
			reads = append(reads, c)
		}
	}
	if len(reads) >= 2 {
		// The part of the read buffer after the first maxReadBuffer
		// bytes, which a turn that reads by itself uses (a connection
		// whose lines were held until its turn executed them reads then,
		// and the batch's input for the connections after it must
		// survive that).
		arena := l.buf[maxReadBuffer:]
		size := min(maxReadBuffer, len(arena)/len(reads))
		for i, c := range reads {
			c.rbuf = arena[i*size : (i+1)*size : (i+1)*size]
			b.ring.Recv(c.fd, c.rbuf)
		}
		b.readBatches.Add(1)
		b.readOps.Add(int64(len(reads)))
		l.complete(reads, b.ring.Submit(b.res), func(c *loopConn, res int) {
			c.preread, c.rres = true, res
		})
	}
	clear(reads)
	b.reads = reads[:0]
	l.dropFailedBatch()
}

// willRead reports whether serving c after an EPOLLIN event reads from it
// (the conditions of serve, as they stand before the turn).
func (c *loopConn) willRead() bool {
	return !c.eof && !c.quit && !c.draining && !c.held && len(c.out) < maxPendingOutput && !c.evicted.Load()
}
