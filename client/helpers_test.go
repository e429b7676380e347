package client

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// backends are the two ways the server serves connections: one epoll
// event loop, and a goroutine per connection.
var backends = []struct {
	name  string
	loops int
}{
	{"eventloop", 1},
	{"goroutines", 0},
}

// forEachBackend runs f as a subtest against a fresh in-process server on
// each backend, configured with opts as well.
func forEachBackend(t *testing.T, f func(t *testing.T, srv *testServer), opts ...kvstore.Option) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			f(t, startServer(t, append([]kvstore.Option{kvstore.WithEventLoops(b.loops)}, opts...)...))
		})
	}
}

// testServer is a real kvstore.Server on a loopback port.
type testServer struct {
	store  *kvstore.Store
	srv    *kvstore.Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startServer starts a server on 127.0.0.1:0 and stops it when the test
// ends.
func startServer(t *testing.T, opts ...kvstore.Option) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, ln, kvstore.New(), opts...)
}

func startServerOn(t *testing.T, ln net.Listener, store *kvstore.Store, opts ...kvstore.Option) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{
		store:  store,
		srv:    kvstore.NewServer(store, opts...),
		addr:   ln.Addr().String(),
		cancel: cancel,
		done:   make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ctx, ln) }()
	t.Cleanup(s.stop)
	return s
}

// stop shuts the server down and waits for Serve to return.
func (s *testServer) stop() {
	s.cancel()
	if s.done != nil {
		<-s.done
		s.done = nil
	}
}

// dial connects a Client to s and closes it when the test ends.
func (s *testServer) dial(t *testing.T, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(testCtx(t), s.addr, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testCtx returns a context that ends with the test, with a generous
// deadline so that a hung call fails the test instead of the whole run.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after a generous
// bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func withMaxTxnDepth(n int) kvstore.Option { return kvstore.WithMaxTxnDepth(n) }

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
