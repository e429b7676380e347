//go:build linux

package kvstore

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of idleUsage for an idle process over one second. A loop that
// kept spinning would be on a CPU, or waiting for one, the whole second:
// about 1 s of CPU on a quiet machine, and on a loaded one less CPU but
// as much runnable time, which is why both are checked. The bounds are
// generous: an idle Go process uses a few milliseconds.
const (
	idleCPUBound      = 200 * time.Millisecond
	idleRunnableBound = 500 * time.Millisecond
)

// processCPU returns the CPU time (user + system) this process has used,
// from /proc/self/stat, and the time its threads have spent running or
// waiting to run, from /proc/self/task/*/schedstat (ok is false when the
// kernel does not keep those).
func processCPU(t *testing.T) (cpu, runnable time.Duration, ok bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; count fields after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// utime and stime are fields 14 and 15 of the line, in clock ticks
	// (USER_HZ, 100 on Linux).
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("cannot parse /proc/self/stat: %q", s)
	}
	cpu = time.Duration(ut+st) * 10 * time.Millisecond

	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	ok = len(tasks) > 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		run, wait, parsed := parseSchedstat(b)
		if !parsed {
			ok = false
			continue
		}
		runnable += time.Duration(run + wait)
	}
	return cpu, runnable, ok
}

// idleUsage measures what this process uses over d, and reports whether
// it stayed within the idle bounds.
func idleUsage(t *testing.T, d time.Duration) (cpu, runnable time.Duration, idle bool) {
	t.Helper()
	cpu0, run0, ok0 := processCPU(t)
	time.Sleep(d)
	cpu1, run1, ok1 := processCPU(t)
	cpu, runnable = cpu1-cpu0, run1-run0
	idle = cpu <= idleCPUBound
	if ok0 && ok1 {
		idle = idle && runnable <= idleRunnableBound
	}
	return cpu, runnable, idle
}

// TestEventLoopsIdleUseNoCPU: loops that have just been busy spin for a
// moment before they block (see eventLoop.wait), but an idle server,
// with its clients connected and silent, uses no CPU.
func TestEventLoopsIdleUseNoCPU(t *testing.T) {
	ts := startServer(t, WithEventLoops(2))
	// Keep the loops busy, so that they spin at the end of the burst,
	// then leave the connections open and quiet.
	var wg sync.WaitGroup
	for range 4 {
		c := ts.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				c.do("PUT k v", "GET k")
			}
		}()
	}
	wg.Wait()
	ts.mu.Lock()
	for i, l := range ts.loops {
		if l.waitState.spin <= 0 {
			t.Errorf("loop %d does not spin: the test checks nothing", i)
		}
	}
	ts.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // the spins end within loopSpin
	cpu, runnable, idle := idleUsage(t, time.Second)
	t.Logf("idle server, 1 s: CPU %v, runnable %v", cpu, runnable)
	if !idle {
		t.Errorf("an idle server used CPU %v and was runnable %v in 1 s (bounds %v, %v)", cpu, runnable, idleCPUBound, idleRunnableBound)
	}
}

// TestIdleUsageCatchesASpinningLoop: the measurement of
// TestEventLoopsIdleUseNoCPU fails for a loop that never stops polling
// (the behaviour it guards against).
func TestIdleUsageCatchesASpinningLoop(t *testing.T) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	events := make([]syscall.EpollEvent, 8)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a loop whose spin never ends
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := epollPoll(epfd, events); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	cpu, runnable, idle := idleUsage(t, time.Second)
	close(stop)
	<-done
	t.Logf("spinning loop, 1 s: CPU %v, runnable %v", cpu, runnable)
	if idle {
		t.Errorf("a spinning loop passed as idle: CPU %v, runnable %v", cpu, runnable)
	}
}
