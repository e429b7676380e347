//go:build linux

package kvstore

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// onLoops reports how many of the server's connections an event loop owns.
func (ts *testServer) onLoops() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for c := range ts.conns {
		if c.onLoop {
			n++
		}
	}
	return n
}

// TestEventLoopsServeManyConnections: connections are spread over the
// loops, none of them costs a goroutine, and all are answered.
func TestEventLoopsServeManyConnections(t *testing.T) {
	const loops, conns = 3, 150
	base := runtime.NumGoroutine()
	ts := startServer(t, WithEventLoops(loops))
	clients := make([]*testClient, conns)
	for i := range clients {
		clients[i] = ts.dial(t)
		clients[i].send(fmt.Sprintf("PUT k%d %d\nGET k%d\n", i, i, i))
	}
	for i, c := range clients {
		if got, want := []string{c.recv(), c.recv()}, []string{respOK, respResult(fmt.Sprint(i))}; got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("client %d: %q, want %q", i, got, want)
		}
	}
	if n := ts.onLoops(); n != conns {
		t.Errorf("%d of %d connections on event loops", n, conns)
	}
	ts.mu.Lock()
	nloops := len(ts.loops)
	for i, l := range ts.loops {
		if l.writeCalls() == 0 {
			t.Errorf("loop %d served no connection", i)
		}
	}
	ts.mu.Unlock()
	if nloops != loops {
		t.Errorf("%d loops, want %d", nloops, loops)
	}
	// The accept loop, the context watcher and the event loops; not one
	// goroutine per connection.
	if n := runtime.NumGoroutine(); n > base+loops+10 {
		t.Errorf("%d goroutines for %d connections (%d before)", n, conns, base)
	}
}

// TestEventLoopsDefault: without options, TCP connections are served by
// GOMAXPROCS-1 loops (at least one); connections that are not *net.TCPConn (here, wrapped
// by a listener) are served by goroutines, and work the same.
func TestEventLoopsDefault(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	c.do("PING")
	if n := ts.onLoops(); n != 1 {
		t.Errorf("%d connections on event loops, want 1", n)
	}
	ts.mu.Lock()
	if want := max(1, runtime.GOMAXPROCS(0)-1); len(ts.loops) != want {
		t.Errorf("%d loops, want GOMAXPROCS-1 (at least 1) = %d", len(ts.loops), want)
	}
	ts.mu.Unlock()

	wrapped := startServer(t)
	wrapped.ln.passThrough.Store(false)
	w := wrapped.dial(t)
	if got := w.do("PUT a 1", "GET a"); got[1] != respResult("1") {
		t.Errorf("wrapped connection: %q", got)
	}
	if n := wrapped.onLoops(); n != 0 {
		t.Errorf("a wrapped connection is on an event loop")
	}
}

// TestEventLoopsSlowReaderPausedAndResumed: a client that pipelines far
// more responses than the socket buffers hold and does not read is paused
// (the server stops executing its requests, so its output stays bounded),
// other clients on the same loop are served meanwhile, and once it reads
// it gets every response, in order.
func TestEventLoopsSlowReaderPausedAndResumed(t *testing.T) {
	ts := startServer(t, WithEventLoops(1))
	big := strings.Repeat("b", 256<<10)
	ts.store.Put("big", big)

	slow := ts.dial(t)
	// 100 MiB of responses take seconds under -race on a loaded machine:
	// more than the usual deadline for a whole connection.
	slow.c.SetDeadline(time.Now().Add(time.Minute))
	const pairs = 400 // 100 MiB of responses
	var req strings.Builder
	for i := range pairs {
		fmt.Fprintf(&req, "GET big\nPUT p%d x\n", i)
	}
	slow.send(req.String())

	executed := func() int {
		n := 0
		for i := range pairs {
			if _, ok := ts.store.Get(fmt.Sprintf("p%d", i)); ok {
				n++
			}
		}
		return n
	}
	// The server stops executing once the client's output is at the
	// bound; the count settles well short of all requests.
	var paused int
	waitFor(t, "the slow client to be paused", func() bool {
		a := executed()
		time.Sleep(100 * time.Millisecond)
		paused = executed()
		return a == paused && paused > 0
	})
	if paused >= pairs/2 {
		t.Fatalf("%d of %d requests executed while the client did not read: output not bounded", paused, pairs)
	}
	t.Logf("paused after %d of %d requests", paused, pairs)

	// Another client on the same loop is served meanwhile, promptly.
	other := ts.dial(t)
	for range 20 {
		t0 := time.Now()
		if got := other.do("PING")[0]; got != `{"status":"Ok","result":"PONG"}` {
			t.Fatalf("other client: %s", got)
		}
		if d := time.Since(t0); d > time.Second {
			t.Fatalf("other client waited %v", d)
		}
	}

	// The slow client reads: it is resumed and gets everything, in order.
	wantBig := respResult(big)
	for i := range pairs {
		if got := slow.recv(); got != wantBig {
			t.Fatalf("response %d: %d bytes, want the big value", 2*i, len(got))
		}
		if got := slow.recv(); got != respOK {
			t.Fatalf("response %d: %s", 2*i+1, got)
		}
	}
	if n := executed(); n != pairs {
		t.Errorf("%d of %d PUTs executed", n, pairs)
	}
}

// TestEventLoopsSlowClientsShareALoop: on one loop, clients dribbling
// bytes and clients not reading do not delay a fast client.
func TestEventLoopsSlowClientsShareALoop(t *testing.T) {
	ts := startServer(t, WithEventLoops(1), WithWriteTimeout(5*time.Second))
	ts.store.Put("big", strings.Repeat("x", 64<<10))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		c := ts.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 { // never reads
				c.c.Write([]byte(strings.Repeat("GET big\n", 200)))
				<-stop
				return
			}
			for _, b := range []byte("PING\n") { // one byte at a time
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				c.c.Write([]byte{b})
			}
		}()
	}
	fast := ts.dial(t)
	var worst time.Duration
	for range 200 {
		t0 := time.Now()
		fast.do("GET big")
		worst = max(worst, time.Since(t0))
	}
	close(stop)
	wg.Wait()
	t.Logf("worst fast GET: %v", worst)
	if worst > time.Second {
		t.Errorf("a fast request waited %v", worst)
	}
}
