package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
// was called, and by Serve when it is called on a server that is shutting
// down.
var ErrServerClosed = errors.New("kvstore: server closed")

// Sizes of the per-connection buffers.
const (
	// minReadBuffer is the read buffer a connection starts with: small, so
	// that idle connections cost little. A read that fills the buffer
	// doubles it, up to maxReadBuffer, for clients that stream pipelined
	// requests. Only a line longer than that grows it further (up to the
	// line limit), and the buffer returns to maxReadBuffer after it.
	minReadBuffer = 1 << 10
	maxReadBuffer = 64 << 10
	// flushThreshold is how many bytes of responses are collected before
	// they are written even though more requests are buffered.
	flushThreshold = 64 << 10
	// keepOutBytes is the largest response buffer kept between batches.
	keepOutBytes = 256 << 10
	// rejectTimeout bounds the error line written to a rejected client.
	rejectTimeout = time.Second
	// lingerQuiet is how long a closing connection waits for more input
	// from the client before it closes (see lingerClose).
	lingerQuiet = 250 * time.Millisecond
)

// aLongTimeAgo is a deadline in the past, used to interrupt blocked reads.
var aLongTimeAgo = time.Unix(1, 0)

// Server serves a Store over the kvd line protocol (see PROTOCOL.md): one
// goroutine and one Session per connection. It knows nothing of commands:
// it moves lines in and responses out, and leaves the rest to Session.
//
// Each connection reads into a buffer that holds at most one line of the
// configured limit (plus what is already pipelined behind it), executes
// every complete request in it, in order, collects the responses, and
// writes them with one system call when it has to wait for more input
// (or every 64 KiB). A client that does not read its responses is
// disconnected when a write takes longer than the write timeout.
//
// Create a Server with NewServer; it is safe for concurrent use.
type Server struct {
	store *Store
	cfg   serverConfig
	log   *slog.Logger

	closing atomic.Bool // set once Shutdown starts

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	addr      net.Addr
	done      chan struct{} // closed when Shutdown starts
	wg        sync.WaitGroup
}

// serverConn is one client connection.
type serverConn struct {
	nc   net.Conn
	sess *Session
}

// NewServer returns a Server for store configured by opts. It does not
// listen yet: call ListenAndServe or Serve.
func NewServer(store *Store, opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &Server{
		store:     store,
		cfg:       cfg,
		log:       cfg.logger,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),
		done:      make(chan struct{}),
	}
}

// Addr returns the address of the listener the server most recently
// started serving on (with the actual port when it was configured as
// ":0"), or nil when it is not serving yet.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ListenAndServe listens on the configured address (WithAddr) and serves
// until ctx is cancelled or Shutdown is called; see Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.closing.Load() {
		return ErrServerClosed
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.addr)
	if err != nil {
		return fmt.Errorf("kvstore: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln and serves each in its own goroutine.
// Serve takes ownership of ln and closes it before returning.
//
// When ctx is cancelled, Serve shuts the server down gracefully (as
// Shutdown does, bounded by WithShutdownTimeout), and returns nil once that
// is complete, or the error of an incomplete shutdown. After Shutdown is
// called, Serve returns ErrServerClosed at once. Any other error is an
// accept error; the connections already accepted keep being served until
// Shutdown is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.trackListener(ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	s.log.Info("kvd listening", "addr", ln.Addr().String())

	// Watch ctx: its cancellation starts a graceful shutdown, whose result
	// Serve returns.
	shutdownErr := make(chan error, 1)
	stopWatch := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.shutdownTimeout)
			defer cancel()
			shutdownErr <- s.Shutdown(sctx)
		case <-stopWatch:
		}
	}()

	err := s.acceptLoop(ln)
	close(stopWatch)
	watcher.Wait()
	select {
	case serr := <-shutdownErr:
		return serr
	default:
	}
	return err
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.listeners[ln] = struct{}{}
		s.addr = ln.Addr()
		return true
	}
	if _, ok := s.listeners[ln]; ok {
		delete(s.listeners, ln)
		ln.Close()
	}
	return true
}

func (s *Server) acceptLoop(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Other accept errors (EMFILE, ECONNABORTED, ...) are
			// usually transient: back off and retry, like net/http.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("kvd accept error; retrying", "err", err, "delay", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
			}
			continue
		}
		backoff = 0
		s.startConn(nc)
	}
}

// startConn registers nc and starts serving it, or turns it away when the
// server is full or shutting down.
func (s *Server) startConn(nc net.Conn) {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.cfg.maxClients {
		s.mu.Unlock()
		s.log.Debug("kvd client rejected: too many clients", "remote", nc.RemoteAddr().String(), "max", s.cfg.maxClients)
		// A fresh socket's send buffer is empty, so this write does not
		// block; the deadline is a safety net.
		nc.SetWriteDeadline(time.Now().Add(rejectTimeout))
		nc.Write(appendError(nil, "too many clients: limit is ", strconv.Itoa(s.cfg.maxClients)))
		nc.Close()
		return
	}
	c := &serverConn{nc: nc, sess: NewSession(s.store, s.cfg.maxTxnDepth)}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serveConn(c)
}

// Shutdown shuts the server down gracefully, like net/http's
// Server.Shutdown: it closes the listeners, lets every connection finish
// the requests it has already read and send their responses, rolls back
// open transactions, closes the connections, and returns once every
// connection goroutine has exited. If ctx expires first, the remaining
// connections are closed forcibly (their transactions are rolled back
// too), Shutdown waits for their goroutines to exit, and returns ctx's
// error. Every write answered Ok is in the Store when Shutdown returns.
//
// Shutdown may be called more than once; once it has been called, Serve
// and ListenAndServe return ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing.Swap(true) {
		close(s.done)
		s.log.Info("kvd shutting down", "connections", len(s.conns))
	}
	for ln := range s.listeners {
		ln.Close()
	}
	// Wake connections blocked waiting for input; a connection busy with
	// requests finishes them first and sees closing before its next read.
	for c := range s.conns {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-finished // a closed connection's goroutine exits promptly
	return ctx.Err()
}

// lingerClose makes sure the responses already written reach the client
// before the connection is closed: closing a socket with unread input makes
// the kernel send a reset, which can destroy responses still in flight (a
// client that pipelines requests after EXIT, or during shutdown). So, like
// net/http, it shuts down the sending side and then reads and discards
// input until the client closes too, or has sent nothing for lingerQuiet,
// and for at most timeout in all (the write timeout: the time a client is
// given to take its responses). An expired Shutdown context also ends it,
// since it closes every connection.
func lingerClose(nc net.Conn, timeout time.Duration) {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	giveUp := time.Now().Add(timeout)
	var scratch [4096]byte
	for time.Now().Before(giveUp) {
		deadline := time.Now().Add(lingerQuiet)
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
			lingerClose(c.nc, s.cfg.writeTimeout)
		}
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.log.Debug("kvd client disconnected", "remote", remote, "reason", reason)
		s.wg.Done()
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
	)
	flush := func() bool {
		if len(out) == 0 {
			return true
		}
		nc.SetWriteDeadline(time.Now().Add(s.cfg.writeTimeout))
		_, err := nc.Write(out)
		if cap(out) > keepOutBytes {
			out = nil
		} else {
			out = out[:0]
		}
		return err == nil
	}
	tooLong := func() {
		out = appendError(out, ErrLineTooLong.Error(), ": limit is "+strconv.Itoa(maxLine)+" bytes")
	}

	for {
		// Execute every complete request already read.
		for start < end {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			line := buf[start : start+i]
			start += i + 1
			switch {
			case skipping:
				skipping = false // the rest of the over-long line
			case len(line) > maxLine:
				tooLong()
			default:
				out, quit = c.sess.ExecuteLine(out, line)
				if quit {
					flush()
					return "quit"
				}
			}
			if len(out) >= flushThreshold && !flush() {
				return "write error"
			}
		}

		// What is left is at most one incomplete line.
		partial := end - start
		switch {
		case skipping:
			start, end = 0, 0
		case partial > maxLine:
			tooLong()
			skipping = true
			start, end = 0, 0
		default:
			copy(buf, buf[start:end])
			start, end = 0, partial
			if end == len(buf) {
				// The line is longer than the buffer but not yet over
				// the limit: grow, never beyond limit+1 bytes.
				nb := make([]byte, min(2*len(buf), maxLine+1))
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

		// About to wait for input: send what we have.
		if !flush() {
			return "write error"
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
		n, err := nc.Read(buf[end:])
		end += n
		filled = end == len(buf)
		if err != nil {
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
