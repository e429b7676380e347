//go:build linux

package kvstore

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEventLoopMixedClientsStress runs, on one event loop, every kind of
// client a loop's round has to keep apart, for a while, each checking that
// every response it gets is exactly the one its own requests call for:
//
//   - talkers: a PUT and a GET of their own key per round trip;
//   - pipeliners: bursts of up to 3,000 requests (more than a turn's),
//     written in pieces cut at random bytes, in the middle of lines;
//   - big readers: pipelined GETs of a 40 KiB value, read slowly, so
//     their sockets fill and their turns stop at the output bound;
//   - quitters: a few requests, EXIT and more requests in one write, then
//     a new connection.
//
// It runs with io_uring batches (the default) and with plain calls; with
// the batches, it found a turn's own read overwriting input a batch had
// read for connections served after it (TestEventLoopBatchedReadsWithHeldLines
// is the focused test).
func TestEventLoopMixedClientsStress(t *testing.T) {
	for _, b := range []struct {
		name string
		opt  Option
	}{{"batched", WithIOUring(true)}, {"plain", WithIOUring(false)}} {
		t.Run(b.name, func(t *testing.T) { testMixedClients(t, b.opt) })
	}
}

func testMixedClients(t *testing.T, opt Option) {
	ts := startServer(t, WithEventLoops(1), opt)
	big := strings.Repeat("0123456789", 4<<10)
	ts.store.Put("big", big)
	const run = time.Second
	deadline := time.Now().Add(run)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	client := func(name string, body func(c *testClient, rng *rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(time.Now().UnixNano())))
			c := ts.dial(t)
			c.c.SetDeadline(time.Now().Add(time.Minute))
			for time.Now().Before(deadline) {
				if err := body(c, rng); err != nil {
					fail(fmt.Errorf("%s: %w", name, err))
					return
				}
				if c.c == nil { // a quitter: a new connection
					c = ts.dial(t)
					c.c.SetDeadline(time.Now().Add(time.Minute))
				}
			}
		}()
	}
	for i := range 12 {
		r := 0
		client(fmt.Sprintf("talker %d", i), func(c *testClient, _ *rand.Rand) error {
			r++
			return c.putGet(fmt.Sprintf("t%d", i), fmt.Sprintf("v%d.%d", i, r))
		})
	}
	for i := range 3 {
		client(fmt.Sprintf("pipeliner %d", i), func(c *testClient, rng *rand.Rand) error {
			n := 1 + rng.IntN(3000)
			var b strings.Builder
			for j := range n {
				fmt.Fprintf(&b, "PUT p%d.%d x\n", i, j%50)
			}
			data := b.String()
			go func() { // in pieces cut anywhere
				for len(data) > 0 {
					k := min(len(data), 1+rng.IntN(20000))
					if _, err := c.c.Write([]byte(data[:k])); err != nil {
						return
					}
					data = data[k:]
				}
			}()
			for range n {
				if err := c.expectLine(respOK); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range 2 {
		client(fmt.Sprintf("big reader %d", i), func(c *testClient, rng *rand.Rand) error {
			n := 1 + rng.IntN(40)
			c.send(strings.Repeat("GET big\nPING\n", n))
			for range n {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				if err := c.expectLine(respResult(big)); err != nil {
					return err
				}
				if err := c.expectLine(`{"status":"Ok","result":"PONG"}`); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range 2 {
		client(fmt.Sprintf("quitter %d", i), func(c *testClient, _ *rand.Rand) error {
			c.send(fmt.Sprintf("PUT q%d 1\nPING\nEXIT\nPUT q%d 2\nPING\n", i, i))
			for _, want := range []string{respOK, `{"status":"Ok","result":"PONG"}`, `{"status":"Ok","mesg":"Bye"}`} {
				if err := c.expectLine(want); err != nil {
					return err
				}
			}
			if line, err := c.br.ReadString('\n'); err == nil || line != "" {
				return fmt.Errorf("after Bye: %q, %v; want EOF", line, err)
			}
			c.c.Close()
			c.c = nil
			return nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 2 {
		if v, _ := ts.store.Get(fmt.Sprintf("q%d", i)); v != "1" {
			t.Errorf("q%d = %q: a request after EXIT was executed", i, v)
		}
	}
}
