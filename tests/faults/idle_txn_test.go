package faults

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
	"github.com/kvd-dev/kvstore/tests/harness"
)

// TestIdleTransactionDoesNotGrowTheStore: one client STARTs a transaction,
// reads a key that does not exist, and goes idle, while two others create
// and delete new keys as fast as they can (pipelining). The store stays
// empty, and its memory must stay bounded: before the fix every deleted key
// left a tombstone (and a bookkeeping entry) for the idle transaction, and
// the heap grew by about 100 bytes per key, without limit. Then the idle
// client's ROLLBACK, and the writers' requests around it, must not stall:
// before the fix, ending the transaction swept every tombstone under the
// store's commit lock. Both connection backends.
func TestIdleTransactionDoesNotGrowTheStore(t *testing.T) {
	for _, b := range []struct {
		name  string
		loops int
	}{{"event-loops", 2}, {"goroutines", 0}} {
		t.Run(b.name, func(t *testing.T) { idleTransaction(t, b.loops) })
	}
}

func idleTransaction(t *testing.T, loops int) {
	base := harness.Goroutines()
	srv := harness.Start(t, kvstore.WithEventLoops(loops))
	idle := dial(t, srv.Addr)
	for _, req := range []string{"START", "PUT idle x"} {
		if r := mustDo(t, idle, req); !r.OK() {
			t.Fatalf("%s: %s", req, r)
		}
	}
	if r := mustDo(t, idle, "GET w0:0"); !r.IsNotFound() {
		t.Fatalf("GET w0:0: %s", r)
	}
	heap0, mem0 := heapInUse(), srv.Store.MemoryUsage()

	const (
		writers  = 2
		pipeline = 32 // PUT+DEL pairs per round trip
		maxPairs = 150_000
	)
	runFor := 3 * time.Second
	var (
		stop, rolledBack atomic.Bool
		pairs            atomic.Int64
		peakMem          atomic.Int64
		worst            [writers]time.Duration
		errs             [writers]error
		wg               sync.WaitGroup
	)
	for w := range writers {
		c := dial(t, srv.Addr)
		wg.Go(func() {
			for n := 0; !stop.Load(); {
				for range pipeline {
					k := fmt.Sprintf("w%d:%d", w, n)
					c.Send("PUT " + k + " v")
					c.Send("DEL " + k)
					n++
				}
				start := time.Now()
				if err := c.Flush(); err != nil {
					errs[w] = err
					return
				}
				for range 2 * pipeline {
					r, err := c.Recv()
					if err == nil && !r.OK() {
						err = fmt.Errorf("response %s", r)
					}
					if err != nil {
						errs[w] = err
						return
					}
				}
				worst[w] = max(worst[w], time.Since(start))
				pairs.Add(pipeline)
				if m := srv.Store.MemoryUsage(); m > peakMem.Load() {
					peakMem.Store(m)
				}
				if !rolledBack.Load() && pairs.Load() >= maxPairs {
					time.Sleep(time.Millisecond) // enough keys: idle until the rollback
				}
			}
		})
	}

	deadline := time.Now().Add(runFor)
	for time.Now().Before(deadline) && pairs.Load() < maxPairs {
		time.Sleep(20 * time.Millisecond)
	}
	heapGrew := int64(heapInUse()) - int64(heap0)
	memGrew := peakMem.Load() - mem0
	start := time.Now()
	if r := mustDo(t, idle, "ROLLBACK"); !r.OK() {
		t.Fatalf("ROLLBACK: %s", r)
	}
	rollback := time.Since(start)
	rolledBack.Store(true)
	time.Sleep(300 * time.Millisecond) // the writers go on after the rollback
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slowest := max(worst[0], worst[1])
	t.Logf("%d keys created and deleted under an idle transaction: MemoryUsage peaked %d bytes above the start, the heap grew %d bytes; ROLLBACK took %v; slowest writer round trip (%d requests) %v",
		pairs.Load(), memGrew, heapGrew, rollback, 2*pipeline, slowest)

	if srv.Store.Len() != 0 {
		t.Errorf("the store holds %d keys, want 0", srv.Store.Len())
	}
	// At most 64 kept tombstones per shard, about 150 bytes each with their
	// bookkeeping: 2.4 MiB, whatever the number of keys.
	const memBound = 4 << 20
	if memGrew > memBound {
		t.Errorf("MemoryUsage grew %d bytes for an empty store, want at most %d", memGrew, memBound)
	}
	// The heap also holds the connections' buffers; before the fix it grew
	// 16 MiB for 200,000 keys.
	if heapGrew > 2*memBound {
		t.Errorf("the heap grew %d bytes for an empty store, want at most %d", heapGrew, 2*memBound)
	}
	// Generous bounds (the machine may be loaded, and -race slows
	// everything): the point is that nothing waits for seconds.
	if rollback > 2*time.Second {
		t.Errorf("ROLLBACK took %v", rollback)
	}
	if slowest > 2*time.Second {
		t.Errorf("a writer's round trip took %v", slowest)
	}
	srv.Shutdown(5 * time.Second)
	harness.CheckGoroutines(t, base)
}

// TestEndingAnIdleTransactionDoesNotStall: a client STARTs, reads, and
// idles while every key of a 150,000-key store is overwritten, so that its
// snapshot pins 150,000 old versions. Its ROLLBACK must answer at once and
// a canary client PUTting on the same event loop (one loop serves
// everybody) must keep getting answers while the store trims those
// versions: before the fix the ROLLBACK swept them all on the loop, under
// the store's commit lock, and the canary waited as long. The bounds are
// relative to how long the trimming took (seen as MemoryUsage coming back
// down), so that a loaded machine does not make the test flaky. Both
// backends.
func TestEndingAnIdleTransactionDoesNotStall(t *testing.T) {
	for _, b := range []struct {
		name  string
		loops int
	}{{"one-event-loop", 1}, {"goroutines", 0}} {
		t.Run(b.name, func(t *testing.T) { endIdleTransaction(t, b.loops) })
	}
}

func endIdleTransaction(t *testing.T, loops int) {
	base := harness.Goroutines()
	srv := harness.Start(t, kvstore.WithEventLoops(loops))
	store := srv.Store
	const keys = 150_000
	for i := range keys {
		store.Put(fmt.Sprint("k", i), "old")
	}
	idle := dial(t, srv.Addr)
	for _, req := range []string{"START", "GET k0"} {
		if r := mustDo(t, idle, req); !r.OK() {
			t.Fatalf("%s: %s", req, r)
		}
	}
	before := store.MemoryUsage()
	for i := range keys {
		store.Put(fmt.Sprint("k", i), "new") // the idle snapshot pins each "old"
	}
	pinned := store.MemoryUsage()

	canary := dial(t, srv.Addr)
	var (
		stop  atomic.Bool
		worst time.Duration
		n     int
		cerr  error
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for ; !stop.Load(); n++ {
			start := time.Now()
			r, err := canary.Do("PUT canary x")
			if err == nil && !r.OK() {
				err = fmt.Errorf("PUT: %s", r)
			}
			if err != nil {
				cerr = err
				return
			}
			worst = max(worst, time.Since(start))
		}
	})
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if r := mustDo(t, idle, "ROLLBACK"); !r.OK() {
		t.Fatalf("ROLLBACK: %s", r)
	}
	rollback := time.Since(start)
	// The old versions are gone when the account is back near where it was
	// before they were pinned.
	for store.MemoryUsage() > before+(pinned-before)/10 {
		if time.Since(start) > time.Minute {
			t.Fatalf("MemoryUsage still %d a minute after the ROLLBACK (%d before pinning, %d pinned)", store.MemoryUsage(), before, pinned)
		}
		time.Sleep(time.Millisecond)
	}
	trimmed := time.Since(start)
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if cerr != nil {
		t.Fatal(cerr)
	}
	t.Logf("%d versions pinned (%d bytes): ROLLBACK answered in %v, trimmed in %v; the canary's slowest of %d PUTs took %v",
		keys, pinned-before, rollback, trimmed, n, worst)
	// Before the fix both were the whole trimming.
	if rollback > trimmed*3/4 {
		t.Errorf("ROLLBACK took %v of the %v trimming", rollback, trimmed)
	}
	if worst > trimmed*3/4 {
		t.Errorf("the canary waited %v during %v of trimming", worst, trimmed)
	}
	srv.Shutdown(5 * time.Second)
	harness.CheckGoroutines(t, base)
}
