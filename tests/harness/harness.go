// Package harness starts real kvd servers on loopback for the test suites
// and checks that they leave no goroutines behind.
package harness

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// Server is a kvd server running on a loopback port.
type Server struct {
	// Addr is the address to dial.
	Addr string
	// Store is the store the server serves; tests may inspect it directly.
	Store *kvstore.Store
	// Server is the running server.
	Server *kvstore.Server

	cancel context.CancelFunc
	done   chan error
}

// Start serves a fresh store on 127.0.0.1 with the given options. The
// server is shut down when the test ends (if the test has not done so).
func Start(t testing.TB, opts ...kvstore.Option) *Server {
	t.Helper()
	return StartStore(t, kvstore.New(), opts...)
}

// StartStore is Start on an existing store.
func StartStore(t testing.TB, store *kvstore.Store, opts ...kvstore.Option) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := kvstore.NewServer(store, opts...)
	s := &Server{Addr: ln.Addr().String(), Store: store, Server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		if err := s.Shutdown(5 * time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// Shutdown calls Server.Shutdown with the given grace period and waits for
// Serve to return. It is idempotent.
func (s *Server) Shutdown(grace time.Duration) error {
	if s.done == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := s.Server.Shutdown(ctx)
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(grace + 5*time.Second):
		if err == nil {
			err = context.DeadlineExceeded
		}
	}
	s.done = nil
	return err
}

// Goroutines returns the current goroutine count, for a baseline.
func Goroutines() int { return runtime.NumGoroutine() }

// CheckGoroutines waits (up to 10s) for the goroutine count to come back to
// baseline and fails the test with a dump of the goroutines otherwise.
func CheckGoroutines(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, baseline %d; still running:\n%s", n, baseline, trim(b.String(), 20000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n" + strings.Repeat(".", 3)
}
