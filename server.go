package kvstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// shutdownDrain is how long Shutdown gives the connections to answer
	// the requests they have already read and to close gracefully. After
	// it every connection is closed, whatever the client does (keeps
	// pipelining, or does not read), so that a shutdown is prompt.
	shutdownDrain = time.Second
)

// lineOverLimit reports whether line, a request line without its "\n" or
// the partial line read so far, is longer than max bytes. A "\r" right
// after the first max bytes does not count: it is part of the "\r\n"
// terminator, so a line of max bytes may end in "\r\n" (a partial line
// of max+1 bytes that ends in "\r" may still be completed by "\n").
func lineOverLimit(line []byte, max int) bool {
	n := len(line)
	return n > max && !(n == max+1 && line[max] == '\r')
}

// appendIncomplete appends the response to a last line without "\n" before
// the client closed its sending side (see ErrIncompleteRequest), and
// counts it in counts.
func appendIncomplete(out []byte, counts *sessionCounts) []byte {
	counts.errs[errIncompleteRequest].Add(1)
	return appendError(out, ErrIncompleteRequest.Error(), ": the client closed its side before the line ended with \\n; it was not executed")
}

// appendTooLong appends the response to a line over the limit of max
// bytes (see ErrLineTooLong), and counts it in counts.
func appendTooLong(out []byte, max int, counts *sessionCounts) []byte {
	counts.errs[errLineTooLong].Add(1)
	return appendError(out, ErrLineTooLong.Error(), ": limit is "+strconv.Itoa(max)+" bytes")
}

// aLongTimeAgo is a deadline in the past, used to interrupt blocked reads.
var aLongTimeAgo = time.Unix(1, 0)

// Server serves a Store over the kvd line protocol (see docs/PROTOCOL.md), with
// one Session per connection. It knows nothing of commands: it moves lines
// in and responses out, and leaves the rest to Session.
//
// Connections are served by one of two backends (see WithEventLoops). On
// Linux, by default, a few epoll event loops (GOMAXPROCS-1, at least one) each
// serve many connections, Redis-style: a connection costs no goroutine and
// keeps private memory only for a partial request line or unsent output,
// and a loop reads from (and writes to) all its ready connections in one
// io_uring system call where the kernel allows it (see WithIOUring).
// Elsewhere, with WithEventLoops(0), or for connections that are not
// *net.TCPConn, each connection has its own goroutine. Both behave the
// same on the wire.
//
// Every connection executes each complete request it has read, in order,
// collects the responses, and writes them with one system call when it
// has to wait for more input (or every 64 KiB). On an event loop each
// connection gets a bounded turn (one read, at most 1,024 requests or
// 64 KiB of responses) and then waits for the others' turns, so one
// client's pipeline cannot hold up the other clients of its loop. A client that does not
// read its responses is disconnected when its responses make no progress
// for the write timeout.
//
// Create a Server with NewServer; it is safe for concurrent use.
type Server struct {
	store *Store
	cfg   serverConfig
	log   *slog.Logger

	started      time.Time          // for Stats.UptimeSeconds
	password     *[sha256.Size]byte // WithPassword's hash; nil: none
	closedCounts sessionCounts      // counters of ended connections, and of refused ones
	// closedLatency holds the latency counts of ended connections
	// served by goroutines (each event loop keeps its own).
	closedLatency latencyCounts

	mem clientMemory // the client-memory budget's bookkeeping

	closing atomic.Bool  // set once Shutdown starts
	drainBy atomic.Int64 // when the shutdown drain ends (Unix ns); set before closing
	forced  atomic.Bool  // set when Shutdown's context expires; under mu

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	addr      net.Addr
	done      chan struct{}  // closed when Shutdown starts
	wg        sync.WaitGroup // one count per connection in conns

	// The event loops, started with the first connection they serve (see
	// handToLoop); nil until then, or when connections are served by
	// goroutines.
	loops      []*eventLoop
	nextLoop   int            // round robin over loops
	loopsNoGo  bool           // starting the loops failed: use goroutines
	loopsGroup sync.WaitGroup // one count per running loop
}

// serverConn is one client connection.
type serverConn struct {
	nc   net.Conn
	sess *Session
	// onLoop is set (under Server.mu) while an event loop owns the
	// connection's socket: nc is closed then, and only the loop may close
	// the copy of the descriptor it serves. A loop that hands the
	// connection to a goroutine for its graceful close sets nc to a new
	// net.Conn on the socket first, under Server.mu.
	onLoop bool
	// loop is the event loop the connection was handed to, if any.
	loop *eventLoop
	// latency is the latency histogram of a connection served by a
	// goroutine (an event loop keeps one for all its connections); set
	// before the goroutine starts, and cleared by connDone, under
	// Server.mu.
	latency *latencyCounts

	// The client-memory budget (see client_memory.go).
	mem        atomic.Int64 // bytes of buffers the connection holds
	evicted    atomic.Bool  // disconnected to keep within the budget
	evictedMem int64        // mem when evicted; set before evicted, under Server.mu
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
	var pw *[sha256.Size]byte
	if cfg.password != "" {
		h := sha256.Sum256([]byte(cfg.password))
		pw = &h
		cfg.password = "" // keep only the hash
	}
	return &Server{
		store:     store,
		cfg:       cfg,
		log:       cfg.logger,
		started:   time.Now(),
		password:  pw,
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

// Serve accepts connections on ln and serves them, on the event loops (see
// WithEventLoops) or each in its own goroutine. Serve takes ownership of ln and closes it before returning.
//
// When ctx is cancelled, Serve shuts the server down gracefully (as
// Shutdown does, bounded by WithShutdownTimeout), and returns nil once that
// is complete, or the error of an incomplete shutdown. After Shutdown is
// called, Serve returns ErrServerClosed at once. Any other error is an
// accept error; the connections already accepted keep being served until
// Shutdown is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.tlsConfig != nil {
		ln = tls.NewListener(ln, s.cfg.tlsConfig)
	}
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
		s.reject(nc, "too many clients: limit is "+strconv.Itoa(s.cfg.maxClients))
		return
	}
	if s.password == nil && s.cfg.protectedMode && !isLocal(nc.RemoteAddr()) {
		s.mu.Unlock()
		s.log.Debug("kvd client rejected: protected mode", "remote", nc.RemoteAddr().String())
		s.reject(nc, mesgProtectedMode)
		return
	}
	// The session's counters: its loop's (set by handToLoop), or its own.
	c := &serverConn{nc: nc, sess: newSession(s.store, s.cfg.maxTxnDepth, nil)}
	if s.password != nil {
		c.sess.requireHash(s.password)
	}
	c.sess.stats = s.Stats
	c.sess.deferDurable = true // the backends wait once per batch of responses
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	if s.handToLoop(c) {
		s.mu.Unlock()
		return
	}
	c.sess.counts = new(sessionCounts)
	c.latency = new(latencyCounts)
	s.mu.Unlock()
	go s.serveConn(c)
}

// mesgProtectedMode is what a client from another host gets in protected
// mode.
const mesgProtectedMode = "protected mode: kvd has no password, so it only serves clients on this host (loopback); " +
	"set a password (kvd -password-file FILE, or the KVD_PASSWORD environment variable; kvstore.WithPassword) " +
	"or turn protected mode off (kvd -protected-mode=false; kvstore.WithProtectedMode(false))"

// isLocal reports whether a client at addr is on this host: a loopback
// TCP address, or an address that is not an IP one (a Unix socket).
func isLocal(addr net.Addr) bool {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	case *net.IPAddr:
		return a.IP.IsLoopback()
	}
	return true
}

// reject sends one error line to a client that is not served and closes
// it. A fresh plain socket's send buffer is empty, so the write does not
// block; a TLS connection must first finish its handshake, which is left
// to a goroutine so that a slow client cannot stall the accept loop. The
// deadline bounds both.
func (s *Server) reject(nc net.Conn, mesg string) {
	resp := appendError(nil, mesg, "")
	s.closedCounts.countError(resp)
	write := func() {
		nc.SetDeadline(time.Now().Add(rejectTimeout))
		n, _ := nc.Write(resp)
		s.closedCounts.bytesOut.Add(uint64(n))
		nc.Close()
	}
	if _, plain := nc.(*net.TCPConn); plain {
		write()
		return
	}
	go write()
}

// connDone forgets a connection that has been closed.
func (s *Server) connDone(c *serverConn, reason string) {
	s.mu.Lock()
	s.addClosed(c)
	delete(s.conns, c)
	s.mu.Unlock()
	s.connGone(c)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("kvd client disconnected", "remote", c.nc.RemoteAddr().String(), "reason", reason)
	}
	s.wg.Done()
}

// drainEnd is when the shutdown drain ends; it is only meaningful once
// closing is set.
func (s *Server) drainEnd() time.Time { return time.Unix(0, s.drainBy.Load()) }

// ioDeadline is the deadline of a write (or a lingering close) that starts
// now: the write timeout, or the end of the shutdown drain if sooner.
func (s *Server) ioDeadline() time.Time {
	d := time.Now().Add(s.cfg.writeTimeout)
	if s.closing.Load() {
		if by := s.drainEnd(); by.Before(d) {
			d = by
		}
	}
	return d
}

// Shutdown shuts the server down gracefully, like net/http's
// Server.Shutdown: it closes the listeners, stops reading from the
// connections, lets every connection finish the requests it has already
// read and send their responses, rolls back open transactions, closes the
// connections, and returns once every connection goroutine has exited.
// It is prompt: it does not wait for clients to go quiet or to read. A
// connection gets one second in all to take its last responses and close
// gracefully; then it is closed anyway (a client that does not read may
// miss responses to requests that were executed), and Shutdown still
// returns nil. If ctx expires first, the remaining
// connections are closed forcibly (their transactions are rolled back
// too), Shutdown waits for their goroutines and event loops to exit, and
// returns ctx's error. Every write answered Ok is in the Store when Shutdown returns.
//
// Shutdown may be called more than once; once it has been called, Serve
// and ListenAndServe return ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.drainBy.CompareAndSwap(0, time.Now().Add(shutdownDrain).UnixNano())
	if !s.closing.Swap(true) {
		close(s.done)
		s.log.Info("kvd shutting down", "connections", len(s.conns))
	}
	for ln := range s.listeners {
		ln.Close()
	}
	// Wake connections blocked waiting for input; a connection busy with
	// requests finishes them first and sees closing before its next read.
	// A connection blocked writing to a client that does not read gives
	// up when the drain ends. The event loops do the same for their
	// connections once woken.
	drainBy := s.drainEnd()
	for c := range s.conns {
		if !c.onLoop {
			c.nc.SetReadDeadline(aLongTimeAgo)
			c.nc.SetWriteDeadline(drainBy)
		}
	}
	for _, l := range s.loops {
		l.wake()
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.loopsGroup.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.forced.Store(true)
	for c := range s.conns {
		if !c.onLoop { // a loop closes its own connections
			c.nc.Close()
		}
	}
	for _, l := range s.loops {
		l.wake()
	}
	s.mu.Unlock()
	<-finished // closed connections and woken loops end promptly
	return ctx.Err()
}
