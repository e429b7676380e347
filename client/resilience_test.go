package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// TestCancelledCallKeepsConnectionInStep: a call whose context ends while
// its response is outstanding returns at once; the late response is read
// and dropped, and the next call on the same connection gets its own
// response. (Scripted fake server: it holds the first response back until
// told.)
func TestCancelledCallKeepsConnectionInStep(t *testing.T) {
	release := make(chan struct{})
	f := startFake(t, &fakeServer{handle: func(_ int, line string) (string, bool) {
		switch {
		case line == "PING":
			return `{"status":"Ok","result":"PONG"}` + "\n", false
		case line == "GET slow":
			<-release
			return `{"status":"Ok","result":"slow value"}` + "\n", false
		case strings.HasPrefix(line, "GET "):
			return `{"status":"Ok","result":"value of ` + line[4:] + `"}` + "\n", false
		}
		return okLine, false
	}})
	c, err := Dial(testCtx(t), f.addr(), WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithCancel(testCtx(t))
	slow := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "slow")
		slow <- err
	}()
	waitFor(t, "the server to receive GET slow", func() bool {
		r := f.received()
		return len(r) > 0 && r[len(r)-1] == "GET slow"
	})
	cancel()
	if err := <-slow; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Get = %v; want context.Canceled", err)
	}
	next := make(chan string, 1)
	go func() {
		v, err := c.Get(testCtx(t), "k1")
		next <- fmt.Sprint(v, err)
	}()
	close(release)
	if got := <-next; got != "value of k1<nil>" {
		t.Fatalf("Get after a cancelled call = %q; want the value of k1", got)
	}
	if n := f.connCount(); n != 1 {
		t.Errorf("%d connections; the cancelled call should not have cost the connection", n)
	}
}

// TestDeadlinesUnderLoad: many goroutines with random, often too short,
// deadlines against a real server. A call either fails with its context's
// error or returns the value of its own key: never another caller's.
func TestDeadlinesUnderLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		c := srv.dial(t, WithPoolSize(2))
		const keys = 50
		for i := range keys {
			if err := srv.store.Put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		var cancelled, ok atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 300 {
					k := (g*31 + i) % keys
					d := time.Duration(rand.IntN(200)) * time.Microsecond
					ctx, cancel := context.WithTimeout(context.Background(), d)
					v, err := c.Get(ctx, fmt.Sprintf("k%d", k))
					cancel()
					switch {
					case errors.Is(err, context.DeadlineExceeded):
						cancelled.Add(1)
					case err != nil:
						errs <- err
						return
					case v != fmt.Sprintf("v%d", k):
						errs <- fmt.Errorf("Get(k%d) = %q: another call's response", k, v)
						return
					default:
						ok.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// After all that, every connection is still in step.
		for i := range keys {
			if v, err := c.Get(testCtx(t), fmt.Sprintf("k%d", i)); err != nil || v != fmt.Sprintf("v%d", i) {
				t.Fatalf("Get(k%d) = %q, %v after the storm", i, v, err)
			}
		}
		t.Logf("%d calls answered, %d ran out of time", ok.Load(), cancelled.Load())
	})
}

// TestCancelledTxnCallEndsTxn: a transaction whose call was cancelled
// ends; the server rolls it back.
func TestCancelledTxnCallEndsTxn(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	tx, err := c.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(testCtx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if err := tx.Commit(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with a cancelled context = %v", err)
	}
	if tx.Depth() != 0 {
		t.Fatalf("depth %d after a cancelled call", tx.Depth())
	}
	if err := tx.Commit(testCtx(t)); !errors.Is(err, ErrTxnClosed) {
		t.Fatalf("Commit after the cancelled call = %v; want ErrTxnClosed", err)
	}
	if _, ok := srv.store.Get("k"); ok {
		t.Errorf("the abandoned transaction was applied")
	}
}

// TestWriteBlockedByServer: a server that stops reading makes writes
// block; the call's deadline ends it, and the connection is replaced.
// (Scripted fake server: the real one always reads.)
func TestWriteBlockedByServer(t *testing.T) {
	unstall := make(chan struct{})
	f := startFake(t, &fakeServer{handle: func(conn int, line string) (string, bool) {
		if conn == 0 && strings.HasPrefix(line, "PUT ") {
			<-unstall // never read again on this connection
			return "", true
		}
		return okHandler(conn, line)
	}})
	t.Cleanup(func() { close(unstall) }) // runs before f.stop
	c, err := Dial(testCtx(t), f.addr(), WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := c.shared[0].c.Load()
	big := strings.Repeat("x", 1<<20)
	// The first Puts fit in the socket buffers and time out waiting for
	// their responses (the connection stays, in step); once the buffers
	// are full a write blocks, and its deadline fails the connection.
	for i := 0; i < 200 && !first.broken.Load(); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := c.Put(ctx, "k", big)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put into a stalled server = %v; want DeadlineExceeded", err)
		}
	}
	if !first.broken.Load() {
		t.Fatal("200 MiB of writes never blocked")
	}
	if err := c.Ping(testCtx(t)); err != nil {
		t.Fatalf("Ping on a new connection: %v", err)
	}
	if n := f.connCount(); n != 2 {
		t.Errorf("%d connections; want the stalled one replaced by a second", n)
	}
}

// TestServerClosesConnections: connections the server closes (idle
// timeout, restart) are replaced on the next call.
func TestServerClosesConnections(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			store := kvstore.New()
			srv := startServerOn(t, ln, store, kvstore.WithEventLoops(b.loops), kvstore.WithIdleTimeout(100*time.Millisecond))
			ctx := testCtx(t)
			c := srv.dial(t, WithPoolSize(1))
			if err := c.Put(ctx, "k", "v"); err != nil {
				t.Fatal(err)
			}
			first := c.shared[0].c.Load()
			waitFor(t, "the idle timeout to close the connection", first.broken.Load)
			if v, err := c.Get(ctx, "k"); v != "v" || err != nil {
				t.Fatalf("Get after the idle timeout = %q, %v", v, err)
			}

			// Restart: stop the server, start another on the same address.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Put(ctx, "k", "in txn"); err != nil {
				t.Fatal(err)
			}
			srv.stop()
			if err := tx.Commit(ctx); err == nil || errors.Is(err, ErrTxnClosed) {
				t.Fatalf("Commit on a stopped server = %v; want a network error", err)
			}
			if err := tx.Commit(ctx); !errors.Is(err, ErrTxnClosed) {
				t.Fatalf("second Commit = %v; want ErrTxnClosed", err)
			}
			ln2, err := net.Listen("tcp", srv.addr)
			if err != nil {
				t.Skipf("cannot listen on %s again: %v", srv.addr, err)
			}
			startServerOn(t, ln2, store, kvstore.WithEventLoops(b.loops))
			second := c.shared[0].c.Load()
			waitFor(t, "the client to notice the shutdown", second.broken.Load)
			if v, err := c.Get(ctx, "k"); v != "v" || err != nil {
				t.Fatalf("Get after the restart = %q, %v (the open transaction must have been rolled back)", v, err)
			}
			if err := c.Update(ctx, func(tx *Txn) error { return tx.Put(ctx, "k", "w") }); err != nil {
				t.Fatalf("Update after the restart: %v", err)
			}
		})
	}
}

// TestTooManyClients: the server's rejection line reaches the caller as an
// error matching ErrTooManyClients.
func TestTooManyClients(t *testing.T) {
	srv := startServer(t, kvstore.WithMaxClients(1))
	ctx := testCtx(t)
	c := srv.dial(t)
	_, err := c.Begin(ctx) // needs a second connection
	if !errors.Is(err, ErrTooManyClients) {
		t.Fatalf("Begin beyond the server's client limit = %v; want ErrTooManyClients", err)
	}
	if err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("the first connection must keep working: %v", err)
	}
}

// TestGarbageFromServer: a line that is not a response fails the call
// with ErrProtocol and the connection is replaced. (Scripted fake server.)
func TestGarbageFromServer(t *testing.T) {
	f := startFake(t, &fakeServer{handle: func(conn int, line string) (string, bool) {
		if line == "GET k" && conn == 0 {
			return "HTTP/1.1 400 Bad Request\n", false
		}
		if line == "GET k" {
			return `{"status":"Ok","result":"v"}` + "\n", false
		}
		return okHandler(conn, line)
	}})
	c, err := Dial(testCtx(t), f.addr(), WithPoolSize(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(testCtx(t), "k"); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Get answered with garbage = %v; want ErrProtocol", err)
	}
	if v, err := c.Get(testCtx(t), "k"); v != "v" || err != nil {
		t.Fatalf("Get on the replacement connection = %q, %v", v, err)
	}
}

func TestRejectedAtConnect(t *testing.T) {
	f := startFake(t, &fakeServer{
		greet:           `{"status":"Error","mesg":"protected mode: no password is set; set one or run with -protected-mode=false"}` + "\n",
		closeAfterGreet: true,
		handle:          okHandler,
	})
	_, err := Dial(testCtx(t), f.addr())
	if !errors.Is(err, ErrProtectedMode) {
		t.Fatalf("Dial = %v; want ErrProtectedMode", err)
	}
}

func TestClose(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := srv.dial(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "k", "v"); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	if _, err := c.Begin(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close = %v; want ErrClosed", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit of a transaction open at Close = %v; want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitFor(t, "the server to roll back", func() bool { _, ok := srv.store.Get("k"); return !ok })
}

// TestBeginRetriesStaleIdleConnection: an idle transaction connection that
// the server closed before the client noticed costs Begin nothing: START
// goes again on a fresh connection. (Scripted fake server: it drops the
// reused connection on START without answering.)
func TestBeginRetriesStaleIdleConnection(t *testing.T) {
	var starts atomic.Int64
	f := startFake(t, &fakeServer{handle: func(conn int, line string) (string, bool) {
		if line == "START" && starts.Add(1) == 2 {
			return "", true // the second START: close without an answer
		}
		return okHandler(conn, line)
	}})
	ctx := testCtx(t)
	c, err := Dial(ctx, f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err = c.Begin(ctx) // reuses the idle connection, which fails
	if err != nil {
		t.Fatalf("Begin after the idle connection died: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n, conns := starts.Load(), f.connCount(); n != 3 || conns != 3 {
		t.Errorf("%d STARTs on %d connections; want 3 on 3 (shared, first txn, replacement)", n, conns)
	}
}

// TestStalledServerIsAbandoned: a server that reads but never answers is
// given up on after the stall timeout, when a call gives up; the next
// call dials a new connection. (Scripted fake server: the real one always
// answers.)
func TestStalledServerIsAbandoned(t *testing.T) {
	unstall := make(chan struct{})
	f := startFake(t, &fakeServer{handle: func(conn int, line string) (string, bool) {
		if conn == 0 && line == "GET k" {
			<-unstall
			return "", true
		}
		if line == "GET k" {
			return `{"status":"Ok","result":"v"}` + "\n", false
		}
		return okHandler(conn, line)
	}})
	t.Cleanup(func() { close(unstall) })
	c, err := Dial(testCtx(t), f.addr(), WithPoolSize(1), WithStallTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := c.shared[0].c.Load()
	for i := 0; i < 100 && !first.broken.Load(); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := c.Get(ctx, "k")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errStalled) {
			t.Fatalf("Get on the stalled connection = %v", err)
		}
	}
	if !first.broken.Load() {
		t.Fatal("the stalled connection was never given up")
	}
	if v, err := c.Get(testCtx(t), "k"); v != "v" || err != nil {
		t.Fatalf("Get on a new connection = %q, %v", v, err)
	}
}
