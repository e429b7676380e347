package faults

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// TestSlowClientsDoNotSlowOthers: clients that send their requests one byte
// per second (one of them inside an open transaction that read a key and
// wrote another) must
// not delay anybody else: fast clients keep getting answers, never waiting
// anywhere near the one second between the slow bytes, and writing the key
// the slow transaction read. The slow clients get their own answers in the
// end, and the slow transaction fails with a conflict.
func TestSlowClientsDoNotSlowOthers(t *testing.T) {
	t.Parallel()
	base := harness.Goroutines()
	srv := harness.Start(t)
	setup := dial(t, srv.Addr)
	if err := setup.Put("s", "0"); err != nil {
		t.Fatal(err)
	}

	const slowClients = 8
	type slowResult struct {
		resp kvclient.Response
		err  error
	}
	results := make([]slowResult, slowClients)
	var slowWG sync.WaitGroup
	for i := range slowClients {
		c := dial(t, srv.Addr)
		if i == 0 {
			// Hold a transaction open that read "s" and wrote.
			mustDo(t, c, "START")
			mustDo(t, c, "GET s")
			mustDo(t, c, "PUT slowtxn x")
		}
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			req := "GET s\n"
			if i == 0 {
				req = "COMMIT\n"
			}
			for j := range len(req) {
				if j > 0 {
					time.Sleep(time.Second)
				}
				if _, err := c.Conn().Write([]byte{req[j]}); err != nil {
					results[i].err = err
					return
				}
			}
			results[i].resp, results[i].err = c.Recv()
		}()
	}

	// Fast clients run while the slow ones dribble.
	stop := time.Now().Add(4 * time.Second)
	const fastClients = 4
	lat := make([][]time.Duration, fastClients)
	errs := make([]error, fastClients)
	var fastWG sync.WaitGroup
	for i := range fastClients {
		c := dial(t, srv.Addr)
		fastWG.Add(1)
		go func() {
			defer fastWG.Done()
			for n := 0; time.Now().Before(stop); n++ {
				req := fmt.Sprintf("PUT s %d-%d", i, n)
				if n%2 == 1 {
					req = "GET s"
				}
				t0 := time.Now()
				r, err := c.Do(req)
				lat[i] = append(lat[i], time.Since(t0))
				if err != nil || !r.OK() {
					errs[i] = fmt.Errorf("%s: %v %v", req, r, err)
					return
				}
			}
		}()
	}
	fastWG.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	worst, median := all[len(all)-1], all[len(all)/2]
	t.Logf("%d fast requests: median %v, worst %v", len(all), median, worst)
	if len(all) < 100 {
		t.Errorf("only %d fast requests in 4s", len(all))
	}
	if worst >= 900*time.Millisecond {
		t.Errorf("a fast request waited %v: slow clients hold others up", worst)
	}

	slowWG.Wait()
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("slow client %d: %v", i, r.err)
		case i == 0 && !r.resp.IsConflict():
			t.Errorf("slow transaction's COMMIT: %v, want a conflict", r.resp)
		case i > 0 && (!r.resp.OK() || r.resp.Result == nil):
			t.Errorf("slow client %d: %v", i, r.resp)
		}
	}
	if v, ok := srv.Store.Get("slowtxn"); ok {
		t.Errorf("the conflicting slow transaction applied: slowtxn=%q", v)
	}
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// TestClientThatNeverReads: a client that pipelines requests for a large
// value and never reads the answers must not make the server buffer without
// bound, must not hold up other clients, and must be disconnected (here
// after the 1s write timeout).
func TestClientThatNeverReads(t *testing.T) {
	base := harness.Goroutines()
	const writeTimeout = time.Second
	srv := harness.Start(t, kvstoreWriteTimeout(writeTimeout))
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	setup := dial(t, srv.Addr)
	if err := setup.Put("big", string(big)); err != nil {
		t.Fatal(err)
	}
	heapBefore := heapInUse()

	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Send requests until the connection breaks: without reading, the
	// sockets fill, the server's write times out and it hangs up.
	start := time.Now()
	sent := 0
	done := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(conn)
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, err := w.WriteString("GET big\n"); err != nil {
				done <- err
				return
			}
			sent++
		}
	}()

	// While it is stuck, others are served promptly, and memory stays
	// bounded.
	other := dial(t, srv.Addr)
	var peak uint64
	var slowest time.Duration
	var brokeAfter time.Duration
	var writeErr error
poll:
	for {
		select {
		case writeErr = <-done:
			brokeAfter = time.Since(start)
			break poll
		case <-time.After(50 * time.Millisecond):
		}
		t0 := time.Now()
		if v, err := other.Get("big"); err != nil || len(v) != len(big) {
			t.Fatalf("other client: %d bytes, %v", len(v), err)
		}
		slowest = max(slowest, time.Since(t0))
		peak = max(peak, heapInUse())
	}
	growth := int64(peak) - int64(heapBefore)
	t.Logf("never-reading client sent %d requests (%d MiB of responses asked for), cut off after %v (%v); heap growth %d KiB; slowest other GET %v",
		sent, sent*len(big)>>20, brokeAfter.Round(time.Millisecond), writeErr, growth>>10, slowest)
	if brokeAfter < writeTimeout/2 || brokeAfter > writeTimeout+10*time.Second {
		t.Errorf("disconnected after %v, want about the write timeout %v", brokeAfter, writeTimeout)
	}
	if sent*len(big) < 64<<20 {
		t.Errorf("only %d requests sent: the test did not ask for enough data to mean anything", sent)
	}
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB while the client did not read: unbounded buffering", growth>>20)
	}
	if slowest > 900*time.Millisecond {
		t.Errorf("other client waited %v", slowest)
	}
	conn.Close()
	other.Close()
	setup.Close()
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}
