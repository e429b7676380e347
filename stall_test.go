package kvstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEndingALongTransactionDoesNotStall ends a transaction that pinned the
// old versions of many keys while another goroutine keeps putting: the
// putter must keep going while those versions are trimmed (the sweep lets
// go of the oracle's mutex between batches) and no Put may wait for a large
// part of the sweep. Before the fix, the rollback swept every key in one
// hold of the mutex and a concurrent Put waited for nearly all of it. (The
// sweep now runs on a goroutine of its own; the test waits for it.)
//
// The bound is relative to the sweep's own duration, so that a loaded
// machine (which slows both down) does not make it flaky; the absolute
// figures are logged (see BENCHMARKS.md).
func TestEndingALongTransactionDoesNotStall(t *testing.T) {
	n := 500_000
	if testing.Short() || raceEnabled {
		n = 150_000
	}
	s := New()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("key:", i)
		s.Put(keys[i], "a")
	}
	tx := s.Begin()
	for _, k := range keys {
		s.Put(k, "b") // tx pins every "a"
	}
	if st := stats(s); st.older != n {
		t.Fatalf("the open transaction pins %d versions, want %d", st.older, n)
	}

	// The putter records every Put; afterwards those that overlapped the
	// rollback are the ones that count.
	type sample struct {
		start time.Time
		took  time.Duration
	}
	var (
		samples []sample
		done    atomic.Bool
		wg      sync.WaitGroup
	)
	started := make(chan struct{})
	wg.Go(func() {
		close(started)
		for i := 0; !done.Load(); i++ {
			start := time.Now()
			s.Put(fmt.Sprint("p", i%1000), "x")
			samples = append(samples, sample{start, time.Since(start)})
		}
	})
	<-started
	time.Sleep(10 * time.Millisecond)
	begin := time.Now()
	tx.Rollback()
	returned := time.Since(begin)
	s.sweepers.Wait() // the sweep runs on a goroutine of its own
	end := time.Now()
	time.Sleep(10 * time.Millisecond)
	done.Store(true)
	wg.Wait()

	took := end.Sub(begin)
	var during int
	var worst time.Duration
	for _, sm := range samples {
		if sm.start.Before(end) && sm.start.Add(sm.took).After(begin) {
			during++
			worst = max(worst, sm.took)
		}
	}
	t.Logf("rollback of %d pinned keys: returned after %v, swept in %v; %d concurrent Puts overlapped it, the slowest %v", n, returned, took, during, worst)
	if during < 3 {
		t.Errorf("only %d Puts overlapped a %v rollback", during, took)
	}
	if worst > took/2 {
		t.Errorf("a Put waited %v during a rollback of %v", worst, took)
	}
	assertNoHistory(t, s)
}
