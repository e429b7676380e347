//go:build linux

package kvstore

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEventLoopSyncsLogItselfUnderWrites: under SyncAlways, an event loop
// whose clients only write syncs the log itself (and every write it
// acknowledges is synced all the same); once its clients only read, it
// leaves the syncing to the log's writer again.
func TestEventLoopSyncsLogItselfUnderWrites(t *testing.T) {
	store := openMem(t, newMemFS(), WithSync(SyncAlways))
	defer store.Close()
	srv := NewServer(store, WithEventLoops(1))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context(), ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}()

	const clients = 8
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	cs := make([]client, clients)
	for i := range cs {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		cs[i] = client{c, bufio.NewReader(c)}
	}
	// phase has every client send n requests, one at a time, and checks
	// every response.
	phase := func(n int, req func(i, j int) string, check func(resp string) error) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range n {
					fmt.Fprintf(cs[i].c, "%s\n", req(i, j))
					line, err := cs[i].br.ReadString('\n')
					if err != nil {
						t.Errorf("client %d: %v", i, err)
						return
					}
					if err := check(line); err != nil {
						t.Errorf("client %d, %s: %v", i, req(i, j), err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	ok := func(resp string) error {
		if !strings.Contains(resp, `"Ok"`) {
			return fmt.Errorf("response %q", resp)
		}
		return nil
	}
	loop := func() *eventLoop {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.loops[0]
	}

	phase(200, func(i, j int) string { return fmt.Sprintf("PUT k%d %d", i, j) }, ok)
	if store.dur.log.Durable() < store.oracle.committed.Load() {
		t.Fatalf("after every write was acknowledged: durable %d, committed %d", store.dur.log.Durable(), store.oracle.committed.Load())
	}
	if loop().selfSyncs.Load() == 0 {
		t.Fatal("under a write-only load the loop never synced the log itself")
	}

	phase(200, func(i, j int) string { return fmt.Sprintf("GET k%d", i) }, ok)
	before := loop().selfSyncs.Load()
	fmt.Fprintf(cs[0].c, "PUT k0 last\n")
	if line, err := cs[0].br.ReadString('\n'); err != nil || ok(line) != nil {
		t.Fatalf("PUT after the reads: %q, %v", line, err)
	}
	if after := loop().selfSyncs.Load(); after != before {
		t.Fatalf("after a read-only load the loop still synced the log itself (%d syncs, %d before)", after, before)
	}
}
