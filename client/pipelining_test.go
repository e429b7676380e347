package client

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// gatedConn counts writes and holds the first one after arm until the
// gate opens.
type gatedConn struct {
	net.Conn
	writes atomic.Int64
	armed  atomic.Bool
	gate   chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) {
	g.writes.Add(1)
	if g.armed.CompareAndSwap(true, false) {
		<-g.gate
	}
	return g.Conn.Write(b)
}

// TestRequestsArePipelined: requests made while a write is in progress are
// written together in the next write, on the same connection, and every
// caller gets its own response.
func TestRequestsArePipelined(t *testing.T) {
	srv := startServer(t)
	for i := range 10 {
		srv.store.Put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	var gc *gatedConn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		gc = &gatedConn{Conn: nc, gate: make(chan struct{})}
		return gc, nil
	}
	c := srv.dial(t, WithPoolSize(1), WithDialer(dial))
	ctx := testCtx(t)
	cn := c.shared[0].c.Load()
	gc.armed.Store(true)
	before := gc.writes.Load()

	var wg sync.WaitGroup
	results := make([]string, 11)
	get := func(i int, key string) {
		defer wg.Done()
		v, err := c.Get(ctx, key)
		results[i] = fmt.Sprint(v, err)
	}
	wg.Add(1)
	go get(10, "k0") // its write blocks at the gate
	waitFor(t, "the first write to block", func() bool { return gc.writes.Load() == before+1 })
	for i := range 10 {
		wg.Add(1)
		go get(i, fmt.Sprintf("k%d", i))
	}
	waitFor(t, "10 more requests to queue", func() bool {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return len(cn.queue)-cn.head == 11
	})
	close(gc.gate)
	wg.Wait()
	if n := gc.writes.Load() - before; n != 2 {
		t.Errorf("11 requests took %d writes; want 2 (the blocked one, then the other 10 in one)", n)
	}
	for i := range 10 {
		if want := fmt.Sprintf("v%d<nil>", i); results[i] != want {
			t.Errorf("caller %d got %q; want %q", i, results[i], want)
		}
	}
	if results[10] != "v0<nil>" {
		t.Errorf("first caller got %q", results[10])
	}
}
