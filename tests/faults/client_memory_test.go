package faults

import (
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
	"github.com/kvd-dev/kvstore/tests/harness"
)

// The client-memory budget (kvstore.WithMaxClientMemory), scaled down so
// that CI stays small. Each attacker makes the server hold about
// memPerClient bytes or more; unbounded, they would hold more than the
// budget.
const memPerClient = 256 << 10

// memAttack is one attack on the budget.
type memAttack struct {
	attackers int
	budget    int64
	attack    func(net.Conn)
	// mustEvict: the attack surely needs more than the budget. Otherwise
	// (non-readers on the event loops, which produce output only as the
	// socket takes it, so each holds at most the rest of one response)
	// the server may stay within the budget without disconnecting anyone.
	mustEvict bool
}

// TestClientMemoryBudget: clients that park a long partial line (200 of
// them, 256 KiB each, against a 32 MiB budget), and clients that pipeline
// GETs of a 256 KiB value without reading (40 of them asking for 16 MiB
// each; the kernel's socket buffers take about 4 MiB each, then the server
// holds the rest of a turn's responses; 8 MiB budget), make the server
// hold more than the client-memory budget: it disconnects the clients
// holding the most until the rest fit, the memory it holds for clients
// stays near the budget, a canary client doing request/response all along
// is never held up for long, and once the attackers are gone the memory
// goes back to the OS within seconds. Both backends.
func TestClientMemoryBudget(t *testing.T) {
	for _, b := range []struct {
		name  string
		loops int
	}{{"event-loops", 2}, {"goroutines", 0}} {
		t.Run(b.name, func(t *testing.T) {
			t.Run("parked-lines", func(t *testing.T) {
				clientMemoryAttack(t, b.loops, memAttack{200, 32 << 20, parkLine, true})
			})
			t.Run("non-readers", func(t *testing.T) {
				a := memAttack{40, 8 << 20, pipelineWithoutReading, b.loops == 0}
				if raceEnabled { // encoding responses is many times slower
					a.attackers, a.budget = 20, 4<<20
				}
				clientMemoryAttack(t, b.loops, a)
			})
		})
	}
}

// parkLine sends most of a long request line and stops.
func parkLine(c net.Conn) {
	c.Write([]byte("PUT parked " + strings.Repeat("p", memPerClient)))
}

// pipelineWithoutReading asks for GETs of the big value and never reads.
func pipelineWithoutReading(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte(strings.Repeat("GET big\n", 64)))
}

func clientMemoryAttack(t *testing.T, loops int, a memAttack) {
	memAttackers, memBudget, attack := a.attackers, a.budget, a.attack
	base := harness.Goroutines()
	srv := harness.Start(t, kvstore.WithEventLoops(loops), kvstore.WithMaxClientMemory(memBudget))
	setup := dial(t, srv.Addr)
	if err := setup.Put("big", strings.Repeat("b", memPerClient)); err != nil {
		t.Fatal(err)
	}
	canary := dial(t, srv.Addr)
	heap0, os0 := heapInUse(), heapFromOS()

	// The canary: request/response all along the attack.
	stop := make(chan struct{})
	var lat []time.Duration
	var canaryErr error
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			r, err := canary.Do("PUT canary " + strconv.Itoa(n))
			lat = append(lat, time.Since(t0))
			if err != nil || !r.OK() {
				canaryErr = err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	// The attackers, with small receive buffers so that the kernel
	// does not absorb megabytes of responses for each.
	conns := make([]net.Conn, memAttackers)
	for i := range conns {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(32 << 10)
		conns[i] = c
		attack(c)
	}

	// Let the server take it all in, then measure.
	var peakHeld, peakHeap uint64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		peakHeld = max(peakHeld, uint64(srv.Server.ClientMemory()))
		time.Sleep(50 * time.Millisecond)
	}
	peakHeap = heapInUse()
	held := srv.Server.ClientMemory()
	close(stop)
	cwg.Wait()
	if canaryErr != nil {
		t.Fatalf("canary: %v", canaryErr)
	}
	slices.Sort(lat)
	worst := lat[len(lat)-1]
	t.Logf("client memory: held %d MiB after the attack (peak seen %d MiB), budget %d MiB; heap +%d MiB; canary %d requests, p50 %v, max %v",
		held>>20, peakHeld>>20, memBudget>>20, (int64(peakHeap)-int64(heap0))>>20, len(lat), lat[len(lat)/2], worst)
	if held > memBudget+2<<20 {
		t.Errorf("the server holds %d MiB for clients, over the %d MiB budget", held>>20, memBudget>>20)
	}
	if growth := int64(peakHeap) - int64(heap0); growth > memBudget+16<<20 {
		t.Errorf("heap grew by %d MiB with a %d MiB client budget", growth>>20, memBudget>>20)
	}
	bound := 2 * time.Second
	if raceEnabled {
		bound = 5 * time.Second
	}
	if worst > bound {
		t.Errorf("the canary waited %v during the attack", worst)
	}

	// Some attackers were disconnected, at least enough to fit the
	// budget; the rest are still connected. A write to a connection the
	// server closed fails by the second try.
	evicted := 0
	for _, c := range conns {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			evicted++
			continue
		}
		time.Sleep(5 * time.Millisecond)
		if _, err := c.Write([]byte("x")); err != nil {
			evicted++
		}
	}
	minEvicted := (int64(memAttackers*memPerClient) - memBudget) / (2 * memPerClient)
	t.Logf("%d of %d attackers disconnected by the server", evicted, memAttackers)
	if a.mustEvict && int64(evicted) < minEvicted || evicted == memAttackers || evicted == 0 && peakHeld > uint64(memBudget)*3/4 {
		t.Errorf("%d of %d attackers disconnected, want at least %d and not all", evicted, memAttackers, minEvicted)
	}

	// The attackers leave: the memory goes back to the OS within seconds.
	for _, c := range conns {
		c.Close()
	}
	waitUntil := time.Now().Add(10 * time.Second)
	start := time.Now()
	for {
		fromOS := heapFromOS()
		if srv.Server.ClientMemory() < 1<<20 && fromOS < os0+16<<20 {
			t.Logf("after the attackers left: heap memory from the OS back to +%d MiB in %v (RSS %d MiB)",
				(int64(fromOS)-int64(os0))>>20, time.Since(start).Round(10*time.Millisecond), rssMiB())
			break
		}
		if time.Now().After(waitUntil) {
			t.Errorf("10s after the attackers left: client memory %d KiB, heap memory from the OS +%d MiB",
				srv.Server.ClientMemory()>>10, (int64(fromOS)-int64(os0))>>20)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	canary.Close()
	setup.Close()
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// heapFromOS is the heap memory the process holds from the OS (obtained
// and not returned), without forcing a collection.
func heapFromOS() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapSys - m.HeapReleased
}

// rssMiB is the process's resident set size in MiB (Linux; 0 elsewhere).
func rssMiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb >> 10
		}
	}
	return 0
}
