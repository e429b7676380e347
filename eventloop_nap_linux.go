//go:build linux

package kvstore

import (
	"syscall"
	"time"
	"unsafe"
)

// How a busy event loop leaves its core to others for a moment between
// rounds (issue 12).
//
// A loop serving many clients that keep it busy (50 connections, one
// request each in flight) finds something ready at every poll: it never
// blocks, so to the kernel's scheduler it is a thread that runs without
// end. On a machine where the loop shares the cores with other busy
// threads (the clients' own, on a small machine; the garbage collector's)
// a thread that never sleeps is preempted only when its time slice is
// found used up, at a scheduler tick (every 4 ms at 250 Hz), and a thread
// woken meanwhile waits for that tick: the loop for a core, with all its
// connections, or a client for the core the loop holds. Measured at 50
// connections, pipeline 1, on 2 cores shared with the load generator
// (BENCHMARKS.md): the clients' p99 sat at that tick, 4.1-4.6 ms against
// Redis's 1.7-2.4 ms, while the loop answered 99.7% of requests within
// 256 µs of reading them. Redis, idle between its rounds, sleeps in
// epoll_wait thousands of times a second and, woken, gets a core at once
// (a thread that has used less than its share of the CPU is the first to
// run).
//
// So a loop that is busy (its last poll brought input) and serves many
// connections sleeps for loopNap before it polls again: a real sleep
// (nanosleep), not a wait for input that the next request would end.
// While it sleeps the core is free for the clients; the loop, having
// slept, gets a core as soon as it wakes; and the requests that arrived
// meanwhile are read in one batch (the trade a network card's interrupt
// coalescing makes, ethtool's rx-usecs: a few microseconds of latency
// for fewer wake-ups). The cost is at most loopNap more for
// the requests that arrive during the nap, which is why a loop naps only
// while its connections' reads are, on average, at least loopNapMinGap
// apart (counted over each loopNapWindow): there a nap adds at most 5% to
// a connection's time between requests. A loop with a few connections
// that each send again as soon as they are answered (4 connections,
// tens of microseconds apart) does not nap: each nap would add a sixth or
// more to the time between their requests. A connection served alone, now
// and then, does not pay either: its response has gone out before the
// loop naps. A loop whose connections wait for the commit log naps too:
// it sees the log's wake-up at most loopNap later, and the clients it
// lets run meanwhile are what shortens the tail under SyncAlways
// (BENCHMARKS.md, "Naps between busy rounds"). All this only while
// other threads want the loop's core (eventloop_contention_linux.go): a
// loop with a core to itself has nobody to leave it to.
//
// The nap is a raw system call, like the polls (see eventloop_wait_linux.go):
// the runtime does not hand the loop's P to another thread for 10 µs (a
// stop-the-world of the garbage collector waits for it that long at most).
// The kernel may let a sleep run longer by the thread's timer slack, 50
// µs by default, which would make the nap six times as long, so the loop
// sets its thread's slack to loopNapSlack first (prctl PR_SET_TIMERSLACK,
// a thread attribute: the goroutine may have moved to another thread
// since the last nap).

const (
	// loopNap is how long a busy loop sleeps between rounds.
	loopNap = 10 * time.Microsecond
	// loopNapMinGap: a loop naps while the reads of each of its active
	// connections are on average at least this far apart.
	loopNapMinGap = 20 * loopNap
	// loopNapWindow is the period over which reads are counted.
	loopNapWindow = time.Millisecond
	// loopNapSlack is the timer slack a napping loop's thread gets, in
	// nanoseconds.
	loopNapSlack = 1000
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK.
const prSetTimerSlack = 29

// loopNapping is what a loop counts to decide whether to nap.
type loopNapping struct {
	nap       time.Duration // the nap; 0: never nap
	on        bool          // nap when busy, decided at the end of the last window
	windowEnd time.Duration // loop clock: when the current window ends
	epoch     uint32        // the current window's number
	reads     int           // reads that brought input in the current window
	active    int           // connections those reads were from
}

// noteRead counts a read that brought input from c.
func (n *loopNapping) noteRead(c *loopConn) {
	n.reads++
	if c.napEpoch != n.epoch {
		c.napEpoch = n.epoch
		n.active++
	}
}

// update ends the window if it is over at now, and decides from it
// whether the loop naps in the next one.
func (n *loopNapping) update(now time.Duration) {
	if now < n.windowEnd {
		return
	}
	// The loop may have slept past the window's end: the reads were
	// spread over the longer time (capped, so that the product below
	// cannot overflow; past a second, reads are sparse anyway).
	window := min(loopNapWindow+now-n.windowEnd, time.Second)
	// Each connection's reads were on average window*active/reads
	// apart: nap if that is at least loopNapMinGap.
	n.on = n.nap > 0 && n.reads > 0 && time.Duration(n.active)*window >= time.Duration(n.reads)*loopNapMinGap
	n.reads, n.active = 0, 0
	n.epoch++
	n.windowEnd = now + loopNapWindow
}

// napNow sleeps for d, with the calling thread's timer slack set to
// loopNapSlack.
func napNow(d time.Duration) {
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, loopNapSlack, 0)
	ts := syscall.NsecToTimespec(int64(d))
	syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
