package kvstore

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestServerFairTurns(t *testing.T) { eachBackend(t, testServerFairTurns) }

// testServerFairTurns: two clients pipeline GETs of a big value (1 MiB,
// then 64 KiB) as fast as they can while reading the answers; a third
// client on the same event loop (one loop) doing request/response must
// keep getting prompt answers: one connection's pipeline may not hold its
// loop. The bound asserted is generous (machines are shared); the measured
// latencies are logged.
func testServerFairTurns(t *testing.T, backend Option) {
	for _, size := range []int{1 << 20, 64 << 10} {
		t.Run(fmt.Sprintf("%dKiB", size>>10), func(t *testing.T) {
			ts := startServer(t, WithEventLoops(1), backend)
			ts.store.Put("big", strings.Repeat("b", size))
			ts.store.Put("small", "s")

			var wg sync.WaitGroup
			var received atomic.Int64
			var heavy []net.Conn
			for range 2 {
				c, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				heavy = append(heavy, c)
				wg.Add(2)
				go func() { // writer: pipelines until the connection closes
					defer wg.Done()
					batch := []byte(strings.Repeat("GET big\n", 64))
					for {
						if _, err := c.Write(batch); err != nil {
							return
						}
					}
				}()
				go func() { // reader: takes every answer
					defer wg.Done()
					n, _ := io.Copy(io.Discard, c)
					received.Add(n)
				}()
			}
			// Let the pipelines get going.
			waitFor(t, "the pipelines", func() bool {
				return ts.numConns() == 2
			})
			time.Sleep(100 * time.Millisecond)

			canary := ts.dial(t)
			var lat []time.Duration
			for stop := time.Now().Add(2 * time.Second); time.Now().Before(stop); {
				t0 := time.Now()
				if got := canary.do("GET small"); got[0] != respResult("s") {
					t.Fatalf("canary got %q", got[0])
				}
				lat = append(lat, time.Since(t0))
			}
			for _, c := range heavy {
				c.Close()
			}
			wg.Wait()
			slices.Sort(lat)
			p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
			t.Logf("canary: %d requests in 2s, p50 %v, p99 %v, max %v; heavy clients received %d MiB",
				len(lat), p50, p99, worst, received.Load()>>20)
			// Generous bounds for a shared machine; the race detector
			// makes encoding a 1 MiB response many times slower.
			bound, minAnswers := time.Second, 10
			if raceEnabled {
				bound, minAnswers = 3*time.Second, 2
			}
			if worst > bound {
				t.Errorf("canary waited %v behind two pipelining clients on its loop", worst)
			}
			if len(lat) < minAnswers {
				t.Errorf("canary got only %d answers in 2s", len(lat))
			}
		})
	}
}
