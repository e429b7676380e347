package client

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// The client benchmarks run kvbench's default workload through the Client:
// benchKeys keys "key:0000000042" of 64-byte values, GET:PUT 9:1 on random
// keys, from many goroutines. By default they start an in-process server
// (event-loop backend); with KVD_BENCH_ADDR=host:port they drive that
// server instead (e.g. a kvd started the way BENCHMARKS.md says), which is
// how the figures next to kvbench's were measured.
const benchKeys = 100_000

var benchValue = strings.Repeat("v", 64)

func benchKey(i uint64) string { return fmt.Sprintf("key:%010d", i) }

// benchAddr returns the server to benchmark against, prefilled.
func benchAddr(b *testing.B) string {
	b.Helper()
	if addr := os.Getenv("KVD_BENCH_ADDR"); addr != "" {
		prefill(b, addr)
		return addr
	}
	store := kvstore.New()
	for i := range uint64(benchKeys) {
		if err := store.Put(benchKey(i), benchValue); err != nil {
			b.Fatal(err)
		}
	}
	ln, err := netListen()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kvstore.NewServer(store, kvstore.WithEventLoops(-1)).Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// prefill loads the keys into an external server unless they are there.
func prefill(b *testing.B, addr string) {
	ctx := context.Background()
	c, err := Dial(ctx, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(ctx, benchKey(benchKeys-1)); err == nil {
		return
	}
	var next atomic.Uint64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < benchKeys; i = next.Add(1) - 1 {
				if err := c.Put(ctx, benchKey(i), benchValue); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// benchKeyNames are the keys, made once.
var benchKeyNames = sync.OnceValue(func() []string {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = benchKey(uint64(i))
	}
	return keys
})

// mixOp does one operation of the 9:1 mix with r choosing key and kind.
func mixOp(ctx context.Context, c *Client, keys []string, r *uint64) error {
	*r ^= *r << 13
	*r ^= *r >> 7
	*r ^= *r << 17
	k := keys[*r%benchKeys]
	if (*r>>32)%10 == 0 {
		return c.Put(ctx, k, benchValue)
	}
	_, err := c.Get(ctx, k)
	return err
}

// BenchmarkClientMix9010 runs GET:PUT 9:1 from 50 goroutines (as kvbench
// -c 50 does), in two shapes: "pipelined", one Client with its default
// pool (2 connections) shared by all goroutines, so that concurrent
// requests are batched; and "conn-per-goroutine", 50 Clients of one
// connection each, one request in flight per connection (kvbench -P 1).
// ops/s is the figure to compare with kvbench's.
func BenchmarkClientMix9010(b *testing.B) {
	addr := benchAddr(b)
	keys := benchKeyNames()
	const goroutines = 50
	run := func(b *testing.B, clientFor func(g int) *Client) {
		var gid atomic.Int64
		b.SetParallelism((goroutines + 1) / 2) // × GOMAXPROCS (2 here)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			g := int(gid.Add(1) - 1)
			c := clientFor(g)
			ctx := context.Background()
			r := uint64(g)*0x9E3779B97F4A7C15 | 1
			for pb.Next() {
				if err := mixOp(ctx, c, keys, &r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	}
	b.Run("pipelined", func(b *testing.B) {
		c, err := Dial(context.Background(), addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, func(int) *Client { return c })
	})
	b.Run("conn-per-goroutine", func(b *testing.B) {
		var mu sync.Mutex
		clients := map[int]*Client{}
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		run(b, func(g int) *Client {
			mu.Lock()
			defer mu.Unlock()
			c, err := Dial(context.Background(), addr, WithPoolSize(1))
			if err != nil {
				b.Fatal(err)
			}
			clients[g] = c
			return c
		})
	})
}

// BenchmarkClientGet is one goroutine doing GETs, one at a time: the
// round trip and the client's own cost per request (see -benchmem).
func BenchmarkClientGet(b *testing.B) {
	addr := benchAddr(b)
	keys := benchKeyNames()
	c, err := Dial(context.Background(), addr, WithPoolSize(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Get(ctx, keys[i%benchKeys]); err != nil {
			b.Fatal(err)
		}
	}
}
