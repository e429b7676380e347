//go:build linux

package kvstore

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestLoopNappingDecision: a loop naps in the next window when its
// connections' reads in the last one were on average at least
// loopNapMinGap apart, and not otherwise.
func TestLoopNappingDecision(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nap    time.Duration
		active int           // connections read from
		reads  int           // reads, spread over them
		window time.Duration // how long the window lasted
		on     bool
	}{
		// 50 connections at pipeline 1, 100,000 requests a second.
		{"50 connections, 500 µs apart", loopNap, 50, 100, loopNapWindow, true},
		// 200 connections, 90,000 requests a second: 90 of them read
		// from once in a millisecond.
		{"200 connections", loopNap, 90, 90, loopNapWindow, true},
		// 4 connections that send again as soon as they are answered.
		{"4 connections, 66 µs apart", loopNap, 4, 60, loopNapWindow, false},
		{"exactly the gap", loopNap, 50, int(50 * loopNapWindow / loopNapMinGap), loopNapWindow, true},
		{"just under the gap", loopNap, 50, int(50*loopNapWindow/loopNapMinGap) + 1, loopNapWindow, false},
		// The loop blocked past the window's end: the reads were
		// spread over the longer time.
		{"window run over", loopNap, 1, 8, 2 * loopNapWindow, true},
		{"same reads, window on time", loopNap, 1, 8, loopNapWindow, false},
		{"a read after an hour asleep", loopNap, 1, 1, time.Hour, true},
		{"no reads", loopNap, 0, 0, loopNapWindow, false},
		{"naps turned off", 0, 50, 100, loopNapWindow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conns := make([]loopConn, 256)
			n := loopNapping{nap: tc.nap}
			n.update(0) // opens the first window, ending at loopNapWindow
			for i := range tc.reads {
				n.noteRead(&conns[i%tc.active])
			}
			if n.active != tc.active || n.reads != tc.reads {
				t.Fatalf("counted %d reads from %d connections; want %d from %d", n.reads, n.active, tc.reads, tc.active)
			}
			n.update(tc.window)
			if n.on != tc.on {
				t.Errorf("on = %v after %d reads from %d connections in %v; want %v", n.on, tc.reads, tc.active, tc.window, tc.on)
			}
			// Nothing read in the next window: the loop does not nap
			// after it, and connections count again in a new window.
			n.update(tc.window + loopNapWindow)
			if n.on {
				t.Error("still on after a window without reads")
			}
			n.noteRead(&conns[0])
			n.noteRead(&conns[0])
			if n.active != 1 || n.reads != 2 {
				t.Errorf("new window: %d reads from %d connections; want 2 from 1", n.reads, n.active)
			}
		})
	}
}

// TestNapSetsTimerSlack: a nap sets its thread's timer slack to
// loopNapSlack, without which the kernel may let a 10 µs sleep last 60.
func TestNapSetsTimerSlack(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const prGetTimerSlack = 30
	before, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	defer syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, before, 0)
	// The default slack (a loop may have napped on this thread before).
	const defaultSlack = 50000
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, defaultSlack, 0); e != 0 {
		t.Fatal(e)
	}
	start := time.Now()
	napNow(loopNap)
	if d := time.Since(start); d < loopNap {
		t.Errorf("a nap of %v returned after %v", loopNap, d)
	}
	if got, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0); got != loopNapSlack {
		t.Errorf("timer slack after a nap: %d ns; want %d", got, loopNapSlack)
	}
}

// TestEventLoopNapsUnderManyClients: a loop kept busy by many clients,
// each of which sends again a while after its answer, naps between its
// rounds, and every client gets its own answers.
func TestEventLoopNapsUnderManyClients(t *testing.T) {
	for _, b := range backends {
		if b.name == "goroutines" {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			ts := startServer(t, b.opt, WithEventLoops(1))
			const clients, rounds = 32, 200
			ts.putGetClients(t, clients, rounds, 300*time.Microsecond)
			ts.mu.Lock()
			naps := ts.loops[0].naps.Load()
			ts.mu.Unlock()
			t.Logf("%d requests, %d naps", 2*clients*rounds, naps)
			if naps == 0 {
				t.Errorf("a loop busy with %d clients never napped", clients)
			}
		})
	}
}
