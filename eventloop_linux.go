//go:build linux

package kvstore

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// The epoll backend: a few event loops, each one goroutine with its own
// epoll instance (level-triggered), serving many connections, in the
// style of Redis and gnet. The acceptor (Serve) takes each *net.TCPConn's
// descriptor, duplicates it (the copy is non-blocking too: the flag
// belongs to the socket), closes the net.Conn, and hands the copy to a
// loop. Closing the net.Conn takes the socket out of Go's own netpoller:
// left there, every request would also wake the runtime's poller thread,
// for nothing, which costs more than the event loop saves (measured: the
// loops were 15% slower than goroutines at pipeline 1 that way). From then
// on every system call on the descriptor is made by its loop, until the
// loop removes it from its epoll set and either closes it or turns it
// back into a net.Conn for a goroutine that does the lingering close (see
// release).
//
// What runs on a loop: read (one read per readiness event, into the
// loop's shared buffer; with io_uring, the round's reads all in one
// system call, see eventloop_batch_linux.go), execute every complete
// line with the connection's Session, write the responses (one write per
// connection and round; with io_uring, the round's writes in one system
// call at its end), and keep, per connection, only the bytes that could
// not be dealt with: a partial line, and responses the socket did not
// take.

const (
	// maxPendingOutput bounds a connection's unsent responses: above it
	// the loop stops executing its requests and stops reading from it,
	// and resumes when the socket takes the output (EPOLLOUT). One
	// response may overshoot it.
	maxPendingOutput = 256 << 10
	// loopEvents is how many epoll events one epoll_wait returns at most.
	loopEvents = 256
	// keepInBytes is the largest partial-line buffer a connection keeps
	// once the line is done; a bigger one is given back.
	keepInBytes = 4 << 10
	// A connection's turn, each time the loop serves it, is bounded (like
	// Redis's per-event limits): one read of at most the loop's buffer
	// (64 KiB), at most turnRequests requests executed, and no new request
	// started once turnOutputBytes of responses were produced in the turn
	// (one response may overshoot it). A connection with requests left
	// over is served again in the next round, after the others.
	turnRequests    = 1024
	turnOutputBytes = 64 << 10
)

// eventLoop is one epoll event loop and the connections it serves.
type eventLoop struct {
	srv  *Server
	epfd int // the epoll instance
	evfd int // an eventfd, in the epoll set, that wakes the loop

	// Shared with other goroutines, under mu.
	mu      sync.Mutex
	pending []loopHandoff // connections handed over, not yet registered
	closed  bool          // the loop has exited: epfd and evfd are closed

	// Owned by the loop goroutine.
	conns     map[int32]*loopConn    // by file descriptor
	waiting   map[*loopConn]struct{} // connections with unsent output
	events    []syscall.EpollEvent
	buf       []byte        // the read buffer, shared by all connections
	out       []byte        // the response buffer, lent to one connection at a time
	start     time.Time     // origin of the loop clock
	now       time.Duration // loop clock, read after each epoll_wait
	tick      time.Duration // how often timeouts are checked
	nextSweep time.Duration // when they are checked next
	draining  bool          // shutdown has been seen

	// Fair turns (see turnRequests).
	round     uint64        // loop rounds, counted after each epoll_wait
	turnReqs  int           // requests executed in the current turn
	turnBytes int           // bytes of responses produced in the current turn
	ready     []*loopConn   // connections with requests left over from their turn
	readyNext []*loopConn   // spare slice for ready
	drainAt   time.Duration // loop clock: when the shutdown drain ends
	durWait   []*loopConn   // connections whose output waits for the log
	durGo     []*loopConn   // scratch: parked connections whose commit is synced
	durWaiter *wal.Waiter   // how the log wakes the loop for durWait (nil until needed)
	durSync   loopSyncing   // whether the loop syncs the log itself (SyncAlways)
	waitState loopWait      // see wait
	batch     *batchIO      // io_uring batches of reads and writes; nil: none
	batchOff  atomic.Bool   // batching was turned off after a failure, for tests

	latency   latencyCounts // the loop's connections' request latencies
	counts    sessionCounts // the counters of the loop's connections' sessions
	writes    atomic.Int64  // write system calls made, for tests
	naps      atomic.Int64  // naps taken (see loopNap), for tests
	selfSyncs atomic.Int64  // syncs of the log the loop made itself, for tests
	evictReq  atomic.Bool   // some connection was evicted (client-memory budget)
}

// loopHandoff is a connection on its way to a loop.
type loopHandoff struct {
	c  *serverConn
	fd int
}

// handToLoop gives c to an event loop, starting the loops on first use,
// and reports whether it did; if not, the caller serves c with a
// goroutine. It is called with s.mu held, before closing is set.
func (s *Server) handToLoop(c *serverConn) bool {
	n := s.cfg.eventLoops
	if n == eventLoopsAuto {
		n = defaultEventLoops(runtime.GOMAXPROCS(0))
	}
	if n <= 0 || s.loopsNoGo {
		return false
	}
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return false
	}
	fd := -1
	if rc, err := tc.SyscallConn(); err == nil {
		rc.Control(func(f uintptr) {
			r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
			if errno == 0 {
				fd = int(r)
			}
		})
	}
	if fd < 0 {
		return false
	}
	if s.loops == nil {
		loops := make([]*eventLoop, 0, n)
		for range n {
			l, err := newEventLoop(s, loopSpin, loopNap)
			if err != nil {
				for _, l := range loops {
					l.closeFDs()
				}
				s.log.Warn("kvd cannot start epoll event loops; serving each connection with a goroutine", "err", err)
				s.loopsNoGo = true
				syscall.Close(fd)
				return false
			}
			loops = append(loops, l)
		}
		s.loops = loops
		for _, l := range loops {
			s.loopsGroup.Add(1)
			go l.run()
		}
	}
	for range len(s.loops) {
		l := s.loops[s.nextLoop%len(s.loops)]
		s.nextLoop++
		c.sess.counts = &l.counts // before the loop may run c
		if l.add(c, fd) {
			c.onLoop, c.loop = true, l
			tc.Close() // the loop has the descriptor's copy
			return true
		}
	}
	syscall.Close(fd)
	return false // every loop has failed and exited
}

// defaultEventLoops is the number of event loops a server starts by
// default: one per GOMAXPROCS but one, and at least one. The P left over
// runs everything else (the acceptor, timers, the garbage collector's
// workers), and its being idle is what keeps the runtime from taking a
// loop's P away while the loop blocks in epoll_wait: sysmon leaves a P in
// a system call alone while another P is idle (runtime.retake), and takes
// it, waking a thread to run it, when none is. Counted at 4 connections,
// pipeline 1, on one core: 0.21 context switches per request with one P
// for one loop, 0.13 with two Ps for one loop; Redis 0.12 (BENCHMARKS.md).
// With GOMAXPROCS 1 there is no P to spare: one loop, which the spin (see
// wait) keeps out of epoll_wait while it is busy.
func defaultEventLoops(procs int) int {
	return max(1, procs-1)
}

// newEventLoop creates a loop's epoll instance and eventfd. The loop
// spins for spin after reading requests (see wait) and naps for nap
// between busy rounds (see loopNap); 0 turns either off.
func newEventLoop(s *Server, spin, nap time.Duration) (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// EFD_NONBLOCK and EFD_CLOEXEC are O_NONBLOCK and O_CLOEXEC.
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, errno
	}
	l := &eventLoop{
		srv:     s,
		epfd:    epfd,
		evfd:    int(r),
		conns:   make(map[int32]*loopConn),
		waiting: make(map[*loopConn]struct{}),
		events:  make([]syscall.EpollEvent, loopEvents),
		buf:     make([]byte, maxReadBuffer),
		start:   time.Now(),
	}
	l.waitState.spin = spin
	l.waitState.napping.nap = nap
	if s.cfg.ioUring {
		if b, err := newBatchIO(); err == nil {
			l.batch = b
			// The first maxReadBuffer bytes for the reads a turn makes
			// itself, the rest for the round's batch of reads, whose
			// input may wait there while other connections are served.
			l.buf = make([]byte, maxReadBuffer+readArenaBytes)
		} else {
			s.log.Debug("kvd event loop without io_uring: one read and one write per connection", "err", err)
		}
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.evfd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.evfd, &ev); err != nil {
		l.closeFDs()
		return nil, err
	}
	// Timeouts are checked every tenth of the shortest one: a connection
	// is closed at most 10% late.
	t := s.cfg.writeTimeout
	if idle := s.cfg.idleTimeout; idle > 0 && idle < t {
		t = idle
	}
	l.tick = min(max(t/10, 5*time.Millisecond), time.Second)
	return l, nil
}

func (l *eventLoop) closeFDs() {
	syscall.Close(l.evfd)
	syscall.Close(l.epfd)
	if l.batch != nil {
		l.batch.ring.Close()
	}
}

// add queues c for registration by the loop and wakes it. It reports
// false if the loop has exited.
func (l *eventLoop) add(c *serverConn, fd int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending = append(l.pending, loopHandoff{c, fd})
	if len(l.pending) == 1 { // otherwise a wake-up is on its way
		l.wakeLocked()
	}
	return true
}

// wake makes the loop return from epoll_wait and look at the pending
// connections and the server's shutdown state.
func (l *eventLoop) wake() {
	l.mu.Lock()
	l.wakeLocked()
	l.mu.Unlock()
}

func (l *eventLoop) wakeLocked() {
	if l.closed {
		return
	}
	// Any non-zero value will do; if the counter is full (EAGAIN) a
	// wake-up is pending anyway.
	one := [8]byte{1}
	rawWrite(l.evfd, one[:])
}

// evict makes the loop close its connections that were evicted to keep
// within the client-memory budget (see evictClients).
func (l *eventLoop) evict() {
	l.evictReq.Store(true)
	l.wake()
}

// releaseEvicted closes the loop's evicted connections.
func (l *eventLoop) releaseEvicted() {
	for _, c := range l.conns {
		if c.evicted.Load() {
			l.release(c, false, "client memory limit")
		}
	}
}

// writeCalls is the number of write system calls the loop made.
func (l *eventLoop) writeCalls() int64 { return l.writes.Load() }

// run is the loop goroutine. Each round: wait for events (or the next
// timeout check), serve every ready connection as far as it can go
// without blocking, register new connections, and react to shutdown. It
// returns when the server is shutting down and the loop has no
// connections left.
func (l *eventLoop) run() {
	s := l.srv
	defer s.loopsGroup.Done()
	defer l.exit()
	for {
		l.submitSends()
		n, err := l.wait(l.pollTimeout())
		if err != nil && !errors.Is(err, syscall.EINTR) {
			s.log.Error("kvd event loop failed; closing its connections", "err", err)
			l.closeAll("event loop failed")
			return
		}
		l.now = time.Since(l.start)
		l.round++
		l.readAll(n)
		for i := range n {
			ev := &l.events[i]
			if ev.Fd == int32(l.evfd) {
				var b [8]byte
				rawRead(l.evfd, b[:])
				continue
			}
			if c := l.conns[ev.Fd]; c != nil {
				l.serve(c, ev.Events)
			}
		}
		l.serveReady()
		l.submitSends()
		l.settleDurable()
		l.submitSends()
		if l.evictReq.Swap(false) {
			l.releaseEvicted()
		}
		l.register()
		if s.closing.Load() {
			if s.forced.Load() {
				l.closeAll("shutdown (forced)")
			} else if !l.draining {
				// Stop reading; finish the requests already read, send
				// their responses, then close (see serve).
				l.draining = true
				l.drainAt = l.now + time.Until(s.drainEnd())
				for _, c := range l.conns {
					c.draining = true
					l.serve(c, 0)
				}
			} else if l.now >= l.drainAt {
				// The drain is over: close what is left, whatever the
				// clients do, so that the shutdown is prompt.
				l.closeAll("shutdown: drain time over")
			}
			if len(l.conns) == 0 {
				return
			}
		}
		if l.now >= l.nextSweep {
			l.sweep()
		}
	}
}

// pollTimeout is the epoll_wait timeout in milliseconds: until the next
// timeout check if one can be due, otherwise forever.
func (l *eventLoop) pollTimeout() int {
	if len(l.ready) > 0 {
		return 0 // connections wait for their next turn
	}
	next := l.nextSweep
	if l.draining {
		next = min(next, l.drainAt)
	} else if len(l.waiting) == 0 && l.srv.cfg.idleTimeout == 0 {
		return -1
	}
	d := next - time.Since(l.start)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// serveReady gives one more turn to each connection that had requests
// left over at the end of its last turn, unless it already had a turn in
// this round (from an epoll event).
func (l *eventLoop) serveReady() {
	if len(l.ready) == 0 {
		return
	}
	ready := l.ready
	l.ready = l.readyNext[:0]
	for _, c := range ready {
		c.ready = false
	}
	for _, c := range ready {
		switch {
		case c.released:
		case c.turnRound == l.round:
			l.markReady(c)
		default:
			l.serve(c, 0)
		}
	}
	clear(ready)
	l.readyNext = ready[:0]
}

// markReady puts c in the ready list if it has requests left that it can
// execute without waiting for its socket.
func (l *eventLoop) markReady(c *loopConn) {
	if c.ready || c.released || !c.held || c.quit || c.full || c.durWait || len(c.out) >= maxPendingOutput {
		return
	}
	c.ready = true
	l.ready = append(l.ready, c)
}

// turnOver reports whether the current turn has used its budget.
func (l *eventLoop) turnOver() bool {
	return l.turnReqs >= turnRequests || l.turnBytes >= turnOutputBytes
}

// sweep closes the connections whose write or idle timeout has passed.
func (l *eventLoop) sweep() {
	l.nextSweep = l.now + l.tick
	for c := range l.waiting {
		if l.now > c.writeAt {
			l.release(c, false, "write timeout")
		}
	}
	if l.srv.cfg.idleTimeout > 0 {
		for _, c := range l.conns {
			if len(c.out) == 0 && !c.held && c.canRead() && l.now > c.idleAt {
				l.release(c, false, "idle timeout")
			}
		}
	}
}

// register adds the connections handed over to the epoll set.
func (l *eventLoop) register() {
	l.mu.Lock()
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()
	s := l.srv
	for _, h := range pending {
		c := &loopConn{serverConn: h.c, fd: h.fd, idleAt: l.now + s.cfg.idleTimeout}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(h.fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, h.fd, &ev); err != nil {
			s.log.Warn("kvd cannot add a connection to epoll", "err", err)
			c.sess.Close()
			syscall.Close(h.fd)
			s.connDone(c.serverConn, "epoll: "+err.Error())
			continue
		}
		c.events = syscall.EPOLLIN
		l.conns[int32(h.fd)] = c
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("kvd client connected", "remote", c.nc.RemoteAddr().String())
		}
		if l.draining {
			c.draining = true
			l.serve(c, 0)
		}
	}
}

// closeAll closes every connection of the loop at once.
func (l *eventLoop) closeAll(reason string) {
	for _, c := range l.conns {
		l.release(c, false, reason)
	}
}

// exit closes the loop's descriptors, and any connection handed over
// that it will never register.
func (l *eventLoop) exit() {
	l.register()
	l.closeAll("shutdown")
	if l.durWaiter != nil {
		l.srv.store.dur.log.RemoveWaiter(l.durWaiter)
	}
	l.durSync.stop(l.srv.store)
	l.mu.Lock()
	l.closed = true
	pending := l.pending
	l.pending = nil
	l.closeFDs()
	l.mu.Unlock()
	for _, h := range pending {
		h.c.sess.Close()
		syscall.Close(h.fd)
		l.srv.connDone(h.c, "shutdown")
	}
}
