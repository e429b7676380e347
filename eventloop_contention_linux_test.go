//go:build linux

package kvstore

import (
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestParseSchedstat: run time and run_delay are the first two fields of
// a schedstat line.
func TestParseSchedstat(t *testing.T) {
	for _, tc := range []struct {
		in         string
		ran, delay int64
		ok         bool
	}{
		{"1095342 72558 4\n", 1095342, 72558, true},
		{"0 0 0\n", 0, 0, true},
		{"12 34", 12, 34, true},
		{"12 9223372036854775807 1\n", 12, 1<<63 - 1, true},
		{"12 9223372036854775808 1\n", 0, 0, false}, // overflows
		{"92233720368547758070 1 1\n", 0, 0, false},
		{"12\n", 0, 0, false},
		{"", 0, 0, false},
		{"12 x 4\n", 0, 0, false},
		{"-1 5 4\n", 0, 0, false},
	} {
		ran, delay, ok := parseSchedstat([]byte(tc.in))
		if ran != tc.ran || delay != tc.delay || ok != tc.ok {
			t.Errorf("parseSchedstat(%q) = %d, %d, %v; want %d, %d, %v", tc.in, ran, delay, ok, tc.ran, tc.delay, tc.ok)
		}
	}
}

// TestLoopContentionDecision: a loop is alone (does not nap) after a
// period in which its thread was busy and waited for a CPU less than a
// tenth of the time, and contended otherwise, also after a period it
// spent mostly asleep; readings from two different threads decide
// nothing.
func TestLoopContentionDecision(t *testing.T) {
	const p = loopContentionPeriod
	for _, tc := range []struct {
		name      string
		tid       int           // thread of the second reading (the first is on 1)
		ran       time.Duration // run time's growth between them
		waited    time.Duration // run_delay's growth between them
		alone     bool          // decision before the second reading
		wantAlone bool
	}{
		{"on a core of its own", 1, p * 9 / 10, p / 1000, false, true},
		{"sharing two cores with its clients", 1, p * 4 / 10, p / 2, false, false},
		{"exactly a tenth", 1, p * 8 / 10, p / loopContendedShare, false, false},
		{"just under a tenth", 1, p * 8 / 10, p/loopContendedShare - 1, false, true},
		{"busy exactly half the period", 1, p/2 - p/100, p / 100, false, true},
		{"mostly asleep", 1, p/2 - p/100 - 1, p / 100, false, false},
		{"asleep after a busy period", 1, 0, 0, true, false},
		{"moved to another thread: no decision", 2, p, 0, false, false},
		{"moved to another thread: decision kept", 2, p, p, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c loopContention
			if c.alone {
				t.Fatal("a loop not yet measured counts as alone")
			}
			c.observe(1, 7000, 5000, time.Second)
			if c.alone {
				t.Fatal("the first reading decided")
			}
			c.alone = tc.alone
			c.observe(tc.tid, 7000+int64(tc.ran), 5000+int64(tc.waited), time.Second+p)
			if c.alone != tc.wantAlone {
				t.Errorf("alone = %v; want %v", c.alone, tc.wantAlone)
			}
		})
	}
}

// TestThreadRunDelayCountsWaits: the calling thread's run_delay grows
// while it shares a CPU with another busy thread, and not while it
// sleeps; a loop's contention follows (a loop asleep learns nothing and
// counts as contended). Each thread is confined to one
// CPU and never unlocked, so that the runtime discards it afterwards.
func TestThreadRunDelayCountsWaits(t *testing.T) {
	const d = 300 * time.Millisecond
	type result struct {
		waited time.Duration
		alone  bool
		err    string
	}
	// measure runs work on a thread of its own, confined to cpu, and
	// returns how long that thread waited for it.
	measure := func(cpu int, work func()) result {
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if err := pinThread(cpu); err != nil {
				ch <- result{err: err.Error()}
				return
			}
			start := time.Now()
			var c loopContention
			c.update(0)
			tid0, _, d0, ok := threadSchedstat()
			work()
			tid1, _, d1, ok1 := threadSchedstat()
			c.update(time.Since(start))
			if !ok || !ok1 || tid0 != tid1 {
				ch <- result{err: "cannot read /proc/thread-self/schedstat"}
				return
			}
			ch <- result{waited: time.Duration(d1 - d0), alone: c.alone}
		}()
		return <-ch
	}
	spin := func() {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
	}
	cpu := currentCPU()

	// Two busy threads on one CPU, each of which waits about half the
	// time, and meanwhile a third thread asleep, which does not wait
	// (but for its one wake-up). Concurrent, so that a reading of some
	// other thread than the caller's cannot satisfy both.
	var wg sync.WaitGroup
	var shared, slept result
	wg.Add(3)
	go func() {
		defer wg.Done()
		measure(cpu, spin)
	}()
	go func() {
		defer wg.Done()
		shared = measure(cpu, spin)
	}()
	go func() {
		defer wg.Done()
		slept = measure(cpu, func() { time.Sleep(d) })
	}()
	wg.Wait()
	if shared.err != "" || slept.err != "" {
		t.Fatal(shared.err, slept.err)
	}
	t.Logf("spinning for %v next to another spinner: waited %v; asleep for %v: waited %v", d, shared.waited, d, slept.waited)
	if shared.waited < d/5 {
		t.Errorf("a thread sharing its CPU with a busy one for %v waited %v for it; want at least %v", d, shared.waited, d/5)
	}
	if shared.alone {
		t.Error("a loop sharing its CPU with a busy thread counts as alone")
	}
	if slept.waited >= d/loopContendedShare {
		t.Errorf("a thread asleep for %v waited %v for a CPU; want less than %v", d, slept.waited, d/loopContendedShare)
	}
	if slept.alone {
		t.Error("a loop whose thread slept through the period counts as alone; want contended (nothing learnt)")
	}
}

// pinThread confines the calling thread to cpu.
func pinThread(cpu int) error {
	var mask [16]uint64
	mask[cpu/64] = 1 << (cpu % 64)
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
	if e != 0 {
		return e
	}
	return nil
}

// currentCPU returns a CPU the calling thread may run on: the first in
// its affinity mask.
func currentCPU() int {
	var mask [16]uint64
	syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
	for i, w := range mask {
		for b := range 64 {
			if w&(1<<b) != 0 {
				return i*64 + b
			}
		}
	}
	return 0
}
