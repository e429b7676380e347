//go:build linux

package kvstore

import (
	"bytes"
	"errors"
	"net"
	"os"
	"runtime/debug"
	"syscall"
	"time"
)

// loopConn is a connection served by an event loop. Only its loop
// touches it.
//
// Invariants, between two calls of serve:
//   - in holds the input not executed yet: a partial line (at most the
//     line limit), and, only when held is set, complete lines before it.
//   - held implies len(out) >= maxPendingOutput (lines are left
//     unexecuted while the client has not taken enough output), or that
//     the connection used up its turn and is in its loop's ready list.
//   - out holds the responses the socket did not take; when it is not
//     empty, full is set and the connection waits for EPOLLOUT, and the
//     connection is in its loop's waiting set with writeAt its deadline.
//   - events is the interest registered in epoll: EPOLLIN while canRead,
//     EPOLLOUT while out is not empty.
//   - An idle connection (no partial line, nothing to send) keeps no
//     buffer: in and out are nil.
type loopConn struct {
	*serverConn
	fd int

	in  []byte // input not executed yet
	out []byte // responses not written yet

	events    uint32 // epoll interest registered
	napEpoch  uint32 // the last loopNapWindow in which the loop read from c
	idleAt    time.Duration
	writeAt   time.Duration
	inWaiting bool // in the loop's waiting set

	held      bool   // in holds complete lines (see the invariants)
	ready     bool   // in the loop's ready list
	turnRound uint64 // the loop round of its last turn
	skipping  bool   // discarding the rest of an over-long line
	full      bool   // the last write hit EAGAIN: write again on EPOLLOUT
	eof       bool   // no more input: the client closed, or a read failed
	quit      bool   // EXIT or QUIT was executed
	draining  bool   // shutdown: no more reads; finish and close
	released  bool   // removed from the loop
	durWait   bool   // out waits for the log (SyncAlways): see settleDurable
	reason    string // why the input ended (when eof)

	// Batched reads and writes (see eventloop_batch_linux.go).
	queued  bool   // this turn's output goes with the round's batch of sends
	pend    []byte // output in the round's batch of sends, not yet submitted
	pendOwn bool   // pend's array is c's own (not the loop's arena)
	preread bool   // the round's batch of reads read for c: rres into rbuf
	rres    int    // bytes read, or a negated errno
	rbuf    []byte // c's share of the loop's read buffer

	// The latency histogram (see LatencyHistogram): the requests the
	// session executed up to observed are counted; the ones after it were
	// read in the loop round that started at readAt (loop clock).
	readAt   time.Duration
	observed uint64
}

// canRead reports whether the loop wants to read from c: not after the
// input ended or shutdown began, and not while too much output is unsent.
// (While c has lines left over from its turn, it reads nothing either,
// but keeps its EPOLLIN interest: it is served again in the next round.)
func (c *loopConn) canRead() bool {
	return !c.eof && !c.quit && !c.draining && len(c.out) < maxPendingOutput
}

// serve runs c as far as it can go without blocking, after the epoll
// events ev (zero: a change of state, such as shutdown): write what is
// unsent, execute held lines, read once and execute what came in, write
// the responses; then close c if it is done, or update its epoll
// interest.
func (l *eventLoop) serve(c *loopConn, ev uint32) {
	defer func() {
		if p := recover(); p != nil {
			l.srv.log.Error("kvd connection panicked", "remote", c.nc.RemoteAddr().String(), "panic", p, "stack", string(debug.Stack()))
			if !c.released {
				l.release(c, false, "panic")
			}
		}
	}()
	if ev&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
		c.full = false
	}
	if c.evicted.Load() { // by another goroutine, for the client-memory budget
		l.release(c, false, "client memory limit")
		return
	}
	if c.pend != nil {
		l.submitSends() // c's last responses go first
	}
	c.turnRound = l.round
	l.turnReqs, l.turnBytes = 0, 0
	// Responses are collected in the loop's buffer unless c already has
	// unsent output, which they must follow.
	out, lent := c.out, false
	if len(out) == 0 {
		out, lent = l.lend(), true
	}
	out, err := l.pump(c, out)
	if err == nil && ev&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && !c.eof && !c.quit && !c.draining && !c.held && len(out) < maxPendingOutput {
		out, err = l.readFrom(c, out)
		if err == nil {
			out, err = l.pump(c, out)
		}
	}
	// Whatever was not written becomes c's own, or goes with the round's
	// batch of sends.
	if c.queued && c.durWait {
		c.queued = false // it waits for the log after all
	}
	if lent {
		l.keepLent(c, out)
	} else {
		l.keepOwn(c, out)
	}
	if c.preread && err == nil {
		// The batch read input for c that its turn did not take (which
		// serve's conditions and willRead's rule out): closing c is
		// better than dropping the input or executing it later.
		err = errUnreadInput
	}
	if c.pend != nil && (err != nil || c.quit || c.draining || c.eof || c.evicted.Load()) {
		l.submitSends() // before c is closed, or lingers with its rest
	}
	switch {
	case c.evicted.Load():
		l.release(c, false, "client memory limit")
	case err != nil:
		l.release(c, false, "write: "+err.Error())
	case c.quit:
		l.release(c, true, "quit")
	case c.held || len(c.out) > 0:
		l.sync(c)
		l.markReady(c)
	case c.draining:
		l.release(c, true, "shutdown")
	case c.eof:
		l.release(c, false, c.reason)
	default:
		l.sync(c)
	}
	if !c.released {
		if n := int64(cap(c.in) + cap(c.out)); n != c.mem.Load() {
			l.srv.account(c.serverConn, n)
		}
	}
}

// pump writes out and executes held lines, alternately, for as long as
// the socket takes the output and the turn lasts.
func (l *eventLoop) pump(c *loopConn, out []byte) ([]byte, error) {
	for {
		if len(out) > 0 && !c.full {
			var err error
			if out, err = l.flush(c, out); err != nil {
				return out, err
			}
		}
		if !c.held || c.quit || len(out) >= maxPendingOutput || l.turnOver() {
			return out, nil
		}
		var rest []byte
		var err error
		rest, out, err = l.execute(c, out, c.in)
		c.in = c.in[:copy(c.in, rest)]
		l.inDone(c)
		if err != nil {
			return out, err
		}
	}
}

// readFrom reads once from c into the loop's buffer and executes what
// came in.
func (l *eventLoop) readFrom(c *loopConn, out []byte) ([]byte, error) {
	for {
		var n int
		var err error
		// The batch of reads uses the rest of l.buf.
		data := l.buf[:maxReadBuffer]
		if c.preread { // by the round's batch of reads
			c.preread = false
			data, n = c.rbuf, c.rres
			c.rbuf = nil
			if n < 0 {
				err = syscall.Errno(-n)
			}
		} else {
			n, err = rawRead(c.fd, data)
		}
		switch {
		case n > 0:
			c.sess.counts.bytesIn.Add(uint64(n))
			l.waitState.napping.noteRead(c)
			if c.sess.executed == c.observed {
				// Nothing read earlier waits for its response: the
				// requests this read completes start the clock.
				c.readAt = l.now
			}
			return l.consume(c, out, data[:n])
		case err == nil:
			c.eof, c.reason = true, "read: EOF"
			if len(c.in) > 0 && !c.skipping {
				// A half-close after a line without "\n": that is
				// not a request, but the client may still read.
				out = appendIncomplete(out, c.sess.counts)
			}
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
		default:
			c.eof, c.reason = true, "read: "+err.Error()
		}
		if c.eof { // a partial line is not a request
			c.in, c.skipping = nil, false
		}
		return out, nil
	}
}

// consume executes the input data that was just read, after the partial
// line c holds, and keeps what is left of it.
func (l *eventLoop) consume(c *loopConn, out, data []byte) ([]byte, error) {
	maxLine := l.srv.cfg.maxLineBytes
	if c.skipping {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return out, nil
		}
		c.skipping = false
		data = data[i+1:]
	}
	if len(c.in) > 0 {
		// Complete the partial line, never holding more than the limit.
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if overLimit(c.in, data, maxLine) {
				out = l.tooLong(c, out)
				c.in, c.skipping = nil, true
			} else {
				c.in = append(c.in, data...)
			}
			return out, nil
		}
		if overLimit(c.in, data[:i], maxLine) {
			out = l.tooLong(c, out)
		} else {
			c.in = append(c.in, data[:i]...)
			before := len(out)
			out, c.quit = c.sess.ExecuteLine(out, c.in)
			l.turnReqs++
			l.turnBytes += len(out) - before
			if len(out) > l.srv.cfg.maxClientOutput {
				return out, errClientOutput
			}
		}
		c.in = c.in[:0]
		data = data[i+1:]
		if c.quit {
			l.inDone(c)
			return out, nil
		}
	}
	rest, out, err := l.execute(c, out, data)
	c.in = append(c.in[:0], rest...)
	l.inDone(c)
	return out, err
}

// inDone tidies c after its input was executed: it gives back a large
// buffer that is empty, and restarts the idle timeout when c waits for a
// new line.
func (l *eventLoop) inDone(c *loopConn) {
	if len(c.in) > 0 || c.held || c.skipping {
		return
	}
	if cap(c.in) > keepInBytes {
		c.in = nil
	}
	c.idleAt = l.now + l.srv.cfg.idleTimeout
}

// execute executes the complete lines at the start of data and returns
// what it did not execute: a partial line, or, when c's output reaches
// maxPendingOutput or its turn is over (c.held is set then), the lines
// after it as well. It writes the output every flushThreshold bytes.
func (l *eventLoop) execute(c *loopConn, out, data []byte) (rest, _ []byte, err error) {
	maxLine := l.srv.cfg.maxLineBytes
	c.held = false
	for !c.quit {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if len(out) >= flushThreshold && !c.full {
			if out, err = l.flush(c, out); err != nil {
				return data, out, err
			}
		}
		if len(out) >= maxPendingOutput || l.turnOver() {
			c.held = true
			return data, out, nil
		}
		line := data[:i]
		data = data[i+1:]
		before := len(out)
		if lineOverLimit(line, maxLine) {
			out = l.tooLong(c, out)
		} else {
			out, c.quit = c.sess.ExecuteLine(out, line)
		}
		l.turnReqs++
		l.turnBytes += len(out) - before
		if len(out) > l.srv.cfg.maxClientOutput {
			return nil, out, errClientOutput
		}
	}
	if c.quit {
		return nil, out, nil // requests after EXIT are not executed
	}
	if lineOverLimit(data, maxLine) {
		out = l.tooLong(c, out)
		c.skipping = true
		data = nil
	}
	return data, out, nil
}

// errUnreadInput ends a connection whose input, read by a batch, its turn
// did not take; it never happens (see serve).
var errUnreadInput = errors.New("input read and not taken")

// errClientOutput ends a connection whose pending responses exceed
// WithMaxClientOutput.
var errClientOutput = errors.New("client output limit")

// overLimit is lineOverLimit for the line made of head and then tail.
func overLimit(head, tail []byte, max int) bool {
	n := len(head) + len(tail)
	if n != max+1 {
		return n > max
	}
	last := byte(0)
	if len(tail) > 0 {
		last = tail[len(tail)-1]
	} else {
		last = head[len(head)-1]
	}
	return last != '\r'
}

// tooLong appends the response to a line over the limit.
func (l *eventLoop) tooLong(c *loopConn, out []byte) []byte {
	return appendTooLong(out, l.srv.cfg.maxLineBytes, c.sess.counts)
}

// flush writes as much of out as the socket takes without blocking and
// returns the rest, moved to the start of out.
func (l *eventLoop) flush(c *loopConn, out []byte) ([]byte, error) {
	if c.durWait || c.sess.durableNeed() != 0 {
		// The responses reveal commits not yet synced: they go out after
		// the loop's one wait for the log, at the end of this round.
		if !c.durWait {
			c.durWait = true
			l.durWait = append(l.durWait, c)
			l.durSync.parked++
		}
		return out, nil
	}
	if len(out) > 0 && !l.durSync.settling {
		l.durSync.answered++
	}
	if l.deferSend(c) {
		return out, nil // see submitSends (which also counts the latency)
	}
	if n := c.sess.executed - c.observed; n > 0 {
		// The responses of these requests are written now: one clock
		// read for them all.
		l.latency.observe(time.Since(l.start)-c.readAt, n)
		c.observed = c.sess.executed
	}
	sent := 0
	for sent < len(out) {
		n, err := rawWrite(c.fd, out[sent:])
		l.writes.Add(1)
		if n > 0 {
			sent += n
			c.sess.counts.bytesOut.Add(uint64(n))
		}
		if err == nil && n > 0 {
			continue
		}
		if err == nil || errors.Is(err, syscall.EAGAIN) {
			c.full = true
			break
		}
		if !errors.Is(err, syscall.EINTR) {
			return out, err
		}
	}
	if sent > 0 {
		c.writeAt = l.now + l.srv.cfg.writeTimeout // progress
	}
	return out[:copy(out, out[sent:])], nil
}

// sync brings c's epoll interest and its place in the waiting set in line
// with its state.
func (l *eventLoop) sync(c *loopConn) {
	var want uint32
	if c.canRead() {
		want |= syscall.EPOLLIN
	}
	if len(c.out) > 0 && !c.durWait {
		want |= syscall.EPOLLOUT
		if !c.inWaiting {
			c.inWaiting = true
			l.waiting[c] = struct{}{}
			c.writeAt = l.now + l.srv.cfg.writeTimeout
		}
	} else if c.inWaiting {
		c.inWaiting = false
		delete(l.waiting, c)
	}
	if want == c.events {
		return
	}
	ev := syscall.EpollEvent{Events: want, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		l.release(c, false, "epoll: "+err.Error())
		return
	}
	c.events = want
}

// release removes c from the loop, rolls back its transaction and closes
// it. With linger (after EXIT, and at shutdown), the descriptor becomes a
// net.Conn again, and a goroutine sends the unsent output and closes the
// connection gracefully (see lingerClose), so that the loop never blocks.
func (l *eventLoop) release(c *loopConn, linger bool, reason string) {
	if c.released {
		return
	}
	if c.pend != nil {
		// Its responses go out before it is closed (and before its
		// descriptor's number can be reused).
		l.submitSends()
		if c.released {
			return
		}
	}
	c.released = true
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	delete(l.conns, int32(c.fd))
	if c.inWaiting {
		delete(l.waiting, c)
	}
	c.sess.Close()
	s := l.srv
	if linger {
		// FileConn registers a copy of the descriptor with Go's netpoller.
		f := os.NewFile(uintptr(c.fd), "")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			s.connDone(c.serverConn, reason)
			return
		}
		s.mu.Lock()
		if !s.forced.Load() { // else Shutdown has given up waiting
			c.nc, c.onLoop = nc, false
			s.mu.Unlock()
			go s.closeGracefully(c.serverConn, c.out, reason)
			return
		}
		s.mu.Unlock()
		nc.Close()
		s.connDone(c.serverConn, reason)
		return
	}
	syscall.Close(c.fd)
	s.connDone(c.serverConn, reason)
}
