package kvstore

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"time"
)

// This file is the portable backend: one goroutine per connection, with
// blocking reads and writes on the net.Conn. It serves every connection on
// systems without the epoll backend, connections that are not
// *net.TCPConn, and every connection when WithEventLoops(0) is given.

// lingerClose makes sure the responses already written reach the client
// before the connection is closed: closing a socket with unread input makes
// the kernel send a reset, which can destroy responses still in flight (a
// client that pipelines requests after EXIT, or during shutdown). So, like
// net/http, it shuts down the sending side and then reads and discards
// input until the client closes too, or has sent nothing for lingerQuiet,
// and for at most the write timeout in all (the time a client is given to
// take its responses), or until the shutdown drain ends. An expired
// Shutdown context also ends it, since it closes every connection.
func (s *Server) lingerClose(nc net.Conn) {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	giveUp := s.ioDeadline()
	var scratch [4096]byte
	for {
		now := time.Now()
		if s.closing.Load() && s.drainEnd().Before(giveUp) {
			giveUp = s.drainEnd() // Shutdown started meanwhile
		}
		if !now.Before(giveUp) {
			return
		}
		deadline := now.Add(lingerQuiet)
		if deadline.After(giveUp) {
			deadline = giveUp
		}
		nc.SetReadDeadline(deadline)
		if _, err := nc.Read(scratch[:]); err != nil {
			return // closed by the client, quiet for lingerQuiet, or timed out
		}
	}
}

// serveConn runs one connection until it ends: the client quits or hangs
// up, an I/O error or timeout, or shutdown.
func (s *Server) serveConn(c *serverConn) {
	remote := c.nc.RemoteAddr().String()
	s.log.Debug("kvd client connected", "remote", remote)
	reason := "closed"
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("kvd connection panicked", "remote", remote, "panic", p, "stack", string(debug.Stack()))
			reason = "panic"
		}
		c.sess.Close() // roll back an open transaction
		if reason == "quit" || reason == "shutdown" {
			s.lingerClose(c.nc)
		}
		c.nc.Close()
		s.connDone(c, reason)
	}()
	reason = s.connLoop(c)
}

// connLoop is the read-execute-write loop of one connection. It returns
// why the connection ended.
func (s *Server) connLoop(c *serverConn) string {
	var (
		nc       = c.nc
		maxLine  = s.cfg.maxLineBytes
		buf      = make([]byte, minReadBuffer)
		filled   bool   // the last read filled buf: the client streams
		start    int    // first unprocessed byte in buf
		end      int    // end of the data in buf
		skipping bool   // discarding the rest of an over-long line
		out      []byte // responses not yet written
		readErr  error
		quit     bool
		held     int64 // bytes of buffers accounted to c
		counts   = c.sess.counts
		// The latency histogram (see LatencyHistogram): the requests
		// executed up to observed are counted; the ones after it were
		// read at readAt.
		readAt   time.Time
		observed uint64
	)
	// track reports the connection's buffers to the client-memory budget.
	track := func() {
		if n := int64(cap(buf) + cap(out)); n != held {
			held = n
			s.account(c, n)
		}
	}
	// flush writes out; it returns why the connection must end, or "".
	flush := func() string {
		if len(out) == 0 {
			return ""
		}
		if len(out) > s.cfg.maxClientOutput {
			return "output limit"
		}
		track()
		// Under SyncAlways: once per batch, until the commits the
		// responses reveal are synced; if the log failed, nothing.
		if c.sess.waitDurable() != nil {
			return "log failed"
		}
		if n := c.sess.executed - observed; n > 0 {
			c.latency.observe(time.Since(readAt), n)
			observed = c.sess.executed
		}
		nc.SetWriteDeadline(s.ioDeadline())
		if s.closing.Load() {
			// Shutdown may have set the drain deadline just before
			// the line above replaced it.
			nc.SetWriteDeadline(s.ioDeadline())
		}
		n, err := nc.Write(out)
		counts.bytesOut.Add(uint64(n))
		if cap(out) > keepOutBytes {
			out = nil
		} else {
			out = out[:0]
		}
		switch {
		case c.evicted.Load():
			return "client memory limit"
		case err != nil:
			return "write error"
		}
		return ""
	}
	tooLong := func() {
		out = appendTooLong(out, maxLine, counts)
	}

	for {
		// Execute every complete request already read.
		for start < end {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			if c.evicted.Load() {
				return "client memory limit"
			}
			line := buf[start : start+i]
			start += i + 1
			switch {
			case skipping:
				skipping = false // the rest of the over-long line
			case lineOverLimit(line, maxLine):
				tooLong()
			default:
				out, quit = c.sess.ExecuteLine(out, line)
				if quit {
					flush()
					return "quit"
				}
			}
			if len(out) >= flushThreshold {
				if why := flush(); why != "" {
					return why
				}
			}
		}

		// What is left is at most one incomplete line.
		partial := end - start
		switch {
		case skipping:
			start, end = 0, 0
		case lineOverLimit(buf[start:end], maxLine):
			tooLong()
			skipping = true
			start, end = 0, 0
		default:
			copy(buf, buf[start:end])
			start, end = 0, partial
			if end == len(buf) {
				// The line is longer than the buffer but not yet over
				// the limit: grow, never beyond limit+2 bytes (the
				// line, its "\r" and one more byte, which either ends
				// it or puts it over the limit).
				nb := make([]byte, min(2*len(buf), maxLine+2))
				copy(nb, buf[:end])
				buf = nb
			} else if filled && len(buf) < maxReadBuffer {
				// The client streams requests: read more per system call.
				nb := make([]byte, 2*len(buf))
				copy(nb, buf[:end])
				buf = nb
			} else if len(buf) > maxReadBuffer && end < maxReadBuffer/2 {
				// A long line is done: give the memory back.
				nb := make([]byte, maxReadBuffer)
				copy(nb, buf[:end])
				buf = nb
			}
		}

		// The client closed its sending side after a line without "\n":
		// that is not a request, but the client may still read.
		if errors.Is(readErr, io.EOF) && end > 0 && !skipping {
			out = appendIncomplete(out, counts)
		}
		// About to wait for input: send what we have.
		if why := flush(); why != "" {
			return why
		}
		if readErr != nil {
			return "read: " + readErr.Error()
		}
		if s.cfg.idleTimeout > 0 && end == 0 && !skipping {
			nc.SetReadDeadline(time.Now().Add(s.cfg.idleTimeout))
		}
		// Checked after setting the deadline: Shutdown sets closing and
		// then a past deadline, so one of the two stops the read.
		if s.closing.Load() {
			return "shutdown"
		}
		track()
		n, err := nc.Read(buf[end:])
		if n > 0 {
			counts.bytesIn.Add(uint64(n))
			if c.sess.executed == observed {
				readAt = time.Now()
			}
		}
		end += n
		filled = end == len(buf)
		if err != nil {
			if c.evicted.Load() {
				return "client memory limit"
			}
			if s.closing.Load() {
				// Answer complete requests that came with the last read,
				// then stop.
				readErr = errors.New("server shutting down")
			} else {
				readErr = err
			}
		}
	}
}

// closeGracefully sends out, the last responses of a connection an event
// loop has given up, and closes it the way the goroutine backend does
// after EXIT or at shutdown (see lingerClose). It runs in its own
// goroutine so that the loop never blocks.
func (s *Server) closeGracefully(c *serverConn, out []byte, reason string) {
	ok := true
	if len(out) > 0 && c.sess.waitDurable() != nil {
		ok, out = false, nil // the log failed: acknowledge nothing
	}
	if len(out) > 0 {
		c.nc.SetWriteDeadline(s.ioDeadline())
		n, err := c.nc.Write(out)
		c.sess.counts.bytesOut.Add(uint64(n))
		ok = err == nil
	}
	if ok {
		s.lingerClose(c.nc)
	}
	c.nc.Close()
	s.connDone(c, reason)
}
