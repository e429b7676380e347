package faults

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// unitReqs is one unit of pipelined work for client c: a PUT, a GET of it
// (checks response order), and a two-key transaction.
func unitReqs(c, u int) []string {
	return []string{
		fmt.Sprintf("PUT a-%d-%d x%d", c, u, u),
		fmt.Sprintf("GET a-%d-%d", c, u),
		"START",
		fmt.Sprintf("PUT t1-%d-%d y", c, u),
		fmt.Sprintf("PUT t2-%d-%d y", c, u),
		"COMMIT",
	}
}

const reqsPerUnit = 6

// pipelineWindow is how many units a load client has in flight at most
// (1,500 requests, about 40 KiB).
const pipelineWindow = 250

type loadClient struct {
	acked   int   // responses received, all in order and as expected
	bad     error // a wrong response
	endErr  error // how the response stream ended
	written int   // units written
}

// TestShutdownUnderPipelinedLoad: while clients pipeline writes and
// transactions as fast as they can, Shutdown is called. Every acknowledged
// write and commit must be in the store afterwards; no transaction may be
// half applied; every request the server executed must have been answered
// (the client received the response before the connection ended); and
// no goroutine may be left behind.
func TestShutdownUnderPipelinedLoad(t *testing.T) {
	base := harness.Goroutines()
	srv := harness.Start(t)
	const clients = 8
	lcs := make([]*loadClient, clients)
	var wg sync.WaitGroup
	for c := range clients {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		lc := &loadClient{}
		lcs[c] = lc
		wg.Add(2)
		// A pipelining client with a bounded window of units in flight,
		// like real pipelining clients.
		window := make(chan struct{}, pipelineWindow)
		done := make(chan struct{})
		go func() { // writer
			defer wg.Done()
			w := bufio.NewWriterSize(conn, 32<<10)
			conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			for u := 0; ; u++ {
				select {
				case window <- struct{}{}:
				default:
					if w.Flush() != nil {
						return
					}
					select {
					case window <- struct{}{}:
					case <-done:
						return
					}
				}
				for _, r := range unitReqs(c, u) {
					if _, err := w.WriteString(r + "\n"); err != nil {
						return
					}
				}
				lc.written = u + 1
			}
		}()
		go func() { // reader
			defer wg.Done()
			defer conn.Close() // stops the writer too
			defer close(done)
			cl := kvclient.New(conn)
			for j := 0; ; j++ {
				r, err := cl.Recv()
				if err != nil {
					lc.endErr = err
					return
				}
				u, k := j/reqsPerUnit, j%reqsPerUnit
				ok := r.OK()
				if k == 1 {
					ok = ok && r.Result != nil && *r.Result == fmt.Sprintf("x%d", u)
				}
				if !ok {
					lc.bad = fmt.Errorf("response %d (%q) = %v", j, unitReqs(c, u)[k], r)
					return
				}
				lc.acked = j + 1
				if k == reqsPerUnit-1 {
					<-window
				}
			}
		}()
	}
	time.Sleep(400 * time.Millisecond)
	if err := srv.Shutdown(10 * time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()

	total := 0
	for c, lc := range lcs {
		total += lc.acked
		if lc.bad != nil {
			t.Errorf("client %d: %v", c, lc.bad)
		}
		if lc.endErr != nil && !errors.Is(lc.endErr, net.ErrClosed) {
			t.Logf("client %d: %d responses, stream ended with %v", c, lc.acked, lc.endErr)
		}
		has := func(k string) bool { _, ok := srv.Store.Get(k); return ok }
		unanswered := 0
		for u := 0; u < lc.written; u++ {
			a := fmt.Sprintf("a-%d-%d", c, u)
			t1, t2 := has(fmt.Sprintf("t1-%d-%d", c, u)), has(fmt.Sprintf("t2-%d-%d", c, u))
			put, commit := u*reqsPerUnit, u*reqsPerUnit+5
			if lc.acked > put && !has(a) {
				t.Errorf("client %d: acknowledged PUT %s lost", c, a)
			}
			if lc.acked > commit && !(t1 && t2) {
				t.Errorf("client %d: acknowledged COMMIT of unit %d lost (t1 %v, t2 %v)", c, u, t1, t2)
			}
			if t1 != t2 {
				t.Errorf("client %d: transaction of unit %d half applied (t1 %v, t2 %v)", c, u, t1, t2)
			}
			if (lc.acked <= put && has(a)) || (lc.acked <= commit && t1) {
				unanswered++
			}
		}
		if unanswered > 0 {
			t.Errorf("client %d: %d units executed by the server but never answered (client got %d responses, stream ended with %v)",
				c, unanswered, lc.acked, lc.endErr)
		}
	}
	t.Logf("%d responses acknowledged before shutdown", total)
	if total < 1000 {
		t.Errorf("only %d responses before shutdown: not a heavy load", total)
	}
	harness.CheckGoroutines(t, base)
}
