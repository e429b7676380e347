//go:build !linux

package kvstore

// eventLoop is the epoll event loop, which exists on Linux only; elsewhere
// every connection is served by its own goroutine.
type eventLoop struct {
	latency latencyCounts // never used
	counts  sessionCounts // never used
}

// handToLoop reports that no event loop can take c: off Linux the server
// always uses the goroutine-per-connection backend.
func (s *Server) handToLoop(*serverConn) bool { return false }

// wake does nothing: there are no loops.
func (l *eventLoop) wake() {}

// evict does nothing: there are no loops.
func (l *eventLoop) evict() {}

// writeCalls is the number of write system calls the loop made (none).
func (l *eventLoop) writeCalls() int64 { return 0 }
