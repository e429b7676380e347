package kvstore

import (
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"
)

// The client-memory budget (WithMaxClientMemory): every connection
// reports the bytes of its own buffers (input not yet executed, output
// not yet sent) with account; the server keeps the total, and when it
// exceeds the budget, disconnects the connections holding the most until
// the rest fit, as Redis 7's maxmemory-clients does. A large net drop of
// the total (connections gone, big buffers given back) makes the server
// return freed memory to the OS soon after (see scheduleFree): Go's
// background scavenger alone takes minutes.

const (
	// freeOSInterval is the shortest time between two returns of memory
	// to the OS: each costs a full garbage collection.
	freeOSInterval = 2 * time.Second
	// minFreeOSDrop and maxFreeOSDrop bound the net drop of client
	// memory (an eighth of the budget) that makes the server return
	// memory to the OS.
	minFreeOSDrop = 4 << 20
	maxFreeOSDrop = 64 << 20
)

// clientMemory is the server's bookkeeping of the memory its connections
// hold.
type clientMemory struct {
	total    atomic.Int64 // bytes held by all connections
	pending  atomic.Int64 // bytes held by evicted connections not yet gone
	peak     atomic.Int64 // highest total since memory was last returned to the OS
	evicting atomic.Bool  // an eviction is under way
	freeing  atomic.Bool  // a return of memory to the OS is scheduled
	lastFree atomic.Int64 // when memory was last returned to the OS (Unix ns)
	evicted  atomic.Int64 // connections disconnected for the budget, ever
}

// ClientMemory returns the bytes the server currently holds in the input
// and output buffers of its connections: what WithMaxClientMemory bounds.
func (s *Server) ClientMemory() int64 { return s.mem.total.Load() }

// account records that c now holds n bytes of buffers, and enforces the
// budget.
func (s *Server) account(c *serverConn, n int64) {
	d := n - c.mem.Swap(n)
	if d == 0 {
		return
	}
	m := &s.mem
	total := m.total.Add(d)
	if d > 0 {
		for p := m.peak.Load(); total > p && !m.peak.CompareAndSwap(p, total); p = m.peak.Load() {
		}
		if total-m.pending.Load() > s.cfg.maxClientMemory {
			s.evictClients()
		}
		return
	}
	if m.peak.Load()-total >= s.freeOSDrop() {
		s.scheduleFree()
	}
}

// connGone settles the accounts of a connection that has ended.
func (s *Server) connGone(c *serverConn) {
	s.account(c, 0)
	if c.evicted.Load() {
		s.mem.pending.Add(-c.evictedMem)
	}
}

// evictClients disconnects the connections holding the most memory until
// the others fit in the budget. Only one eviction runs at a time; a
// connection whose growth finds one under way leaves it the work.
func (s *Server) evictClients() {
	m := &s.mem
	if !m.evicting.CompareAndSwap(false, true) {
		return
	}
	defer m.evicting.Store(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	over := m.total.Load() - m.pending.Load() - s.cfg.maxClientMemory
	if over <= 0 {
		return
	}
	type holder struct {
		c   *serverConn
		mem int64
	}
	var holders []holder
	for c := range s.conns {
		if n := c.mem.Load(); n > 0 && !c.evicted.Load() {
			holders = append(holders, holder{c, n})
		}
	}
	slices.SortFunc(holders, func(a, b holder) int { return int(b.mem - a.mem) })
	var freed int64
	n := 0
	for _, h := range holders {
		if freed >= over {
			break
		}
		c := h.c
		c.evictedMem = h.mem
		c.evicted.Store(true)
		m.pending.Add(h.mem)
		freed += h.mem
		n++
		if c.onLoop {
			c.loop.evict()
		} else {
			c.nc.SetDeadline(aLongTimeAgo) // its goroutine sees evicted and ends
		}
	}
	m.evicted.Add(int64(n))
	s.log.Warn("kvd client memory over budget: disconnecting the clients holding the most",
		"clients", n, "bytes", freed, "held", m.total.Load(), "budget", s.cfg.maxClientMemory)
}

// freeOSDrop is the net drop of client memory after which memory is
// returned to the OS.
func (s *Server) freeOSDrop() int64 {
	return min(max(s.cfg.maxClientMemory/8, minFreeOSDrop), maxFreeOSDrop)
}

// scheduleFree returns freed memory to the OS soon (debug.FreeOSMemory),
// at most once per freeOSInterval, in a goroutine of its own: Go's
// scavenger alone gives memory back over minutes, so the memory of
// thousands of connections that are gone would stay in the process's
// RSS.
func (s *Server) scheduleFree() {
	m := &s.mem
	if !m.freeing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			if wait := time.Until(time.Unix(0, m.lastFree.Load()).Add(freeOSInterval)); wait > 0 {
				time.Sleep(wait)
			}
			m.peak.Store(m.total.Load())
			debug.FreeOSMemory()
			m.lastFree.Store(time.Now().UnixNano())
			m.freeing.Store(false)
			// A drop while this one ran found freeing set: look again.
			if m.peak.Load()-m.total.Load() < s.freeOSDrop() || !m.freeing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}
