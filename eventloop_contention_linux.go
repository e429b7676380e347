//go:build linux

package kvstore

import (
	"syscall"
	"time"
	"unsafe"
)

// Whether a loop's core is wanted by others: the condition under which
// its naps help (issue 12).
//
// A nap (see loopNap) is for a loop that shares its core with other busy
// threads: it lets them run without waiting for the scheduler's tick. A
// loop whose core nobody else wants gains nothing by it and loses its
// length and more, in a virtual machine where an idle CPU halts and a
// wake-up takes tens of microseconds: with the server on one core and
// its clients on the other (bench/compare.sh -p), the naps cost the
// transactions a sixth of their throughput and put their p99 above
// Redis's (BENCHMARKS.md).
//
// The kernel says how long a thread has waited for a CPU while runnable
// (the second field of /proc/thread-self/schedstat, run_delay, in
// nanoseconds, with CONFIG_SCHED_INFO as every distribution builds it;
// the first field is the time it ran). Measured
// at 50 connections, pipeline 1: a loop on a core of its own waits
// 0.1%-4% of the time; sharing two cores with its clients, 36%-52%, naps
// or not; at 4 connections, 13%-40%. So every loopContentionPeriod a
// loop reads its thread's run time and run_delay, and counts as alone in
// the next period, and does not nap, only if it was busy (ran or waited
// to run for at least half the period) and waited less than
// 1/loopContendedShare of it. A loop that was mostly asleep has learnt
// nothing of its core, and counts as contended: when load comes, it
// naps from the start, which is what matters where the core is shared
// (a loop that began a burst of load without naps would leave its
// clients to the scheduler's tick for up to a period). Until the first
// measurement, and where the file cannot be read, a loop counts as
// contended too (it naps as the rule of loopNap says). The loop goroutine
// may have moved to another thread between two readings (it is not
// locked to one); their difference is then meaningless, and the reading
// only starts a new period on the new thread.

const (
	// loopContentionPeriod is how often a loop measures how long its
	// thread waited for a CPU.
	loopContentionPeriod = 100 * time.Millisecond
	// loopContendedShare: a busy loop whose thread waited for a CPU for
	// less than 1/loopContendedShare of a period does not nap in the
	// next.
	loopContendedShare = 10
)

// loopContention is what a loop knows of its thread's waits for a CPU.
// The zero value is a loop not yet measured, which counts as contended.
type loopContention struct {
	alone  bool          // busy in the last period, and its waits were short: no naps
	broken bool          // the schedstat file cannot be read: stop trying
	tid    int           // the thread of the last reading; 0: none
	ran    int64         // its run time then, in nanoseconds
	delay  int64         // its run_delay then, in nanoseconds
	at     time.Duration // loop clock at the last reading
}

// update reads the thread's run time and run_delay once
// loopContentionPeriod has passed since the last reading, and decides
// from them.
func (c *loopContention) update(now time.Duration) {
	if c.broken || (c.tid != 0 && now-c.at < loopContentionPeriod) {
		return
	}
	tid, ran, delay, ok := threadSchedstat()
	if !ok {
		c.broken, c.alone = true, false
		return
	}
	c.observe(tid, ran, delay, now)
}

// observe decides from a reading of thread tid's run time and run_delay
// at now.
func (c *loopContention) observe(tid int, ran, delay int64, now time.Duration) {
	if tid == c.tid && now > c.at {
		period := now - c.at
		waited := time.Duration(delay - c.delay)
		busy := time.Duration(ran-c.ran)+waited >= period/2
		c.alone = busy && waited*loopContendedShare < period
	}
	c.tid, c.ran, c.delay, c.at = tid, ran, delay, now
}

// schedstatPath is the calling thread's scheduler statistics (Linux 3.17
// and later), NUL-terminated for openat.
var schedstatPath = []byte("/proc/thread-self/schedstat\x00")

// threadSchedstat returns the calling thread's id, how long it has run
// and how long it has waited for a CPU while runnable, in nanoseconds.
// The calls are raw, so the goroutine cannot move to another thread
// between them.
func threadSchedstat() (tid int, ran, delay int64, ok bool) {
	r, _, _ := syscall.RawSyscall(syscall.SYS_GETTID, 0, 0, 0)
	tid = int(r)
	atFDCWD := -100
	fd, _, e := syscall.RawSyscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&schedstatPath[0])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return 0, 0, 0, false
	}
	var b [96]byte
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
	if e != 0 {
		return 0, 0, 0, false
	}
	ran, delay, ok = parseSchedstat(b[:n])
	return tid, ran, delay, ok
}

// parseSchedstat returns the first two fields of a schedstat line ("run
// time, run_delay, timeslices", decimal, space-separated).
func parseSchedstat(b []byte) (ran, delay int64, ok bool) {
	var f [2]int64
	field, digits := 0, 0
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			d := int64(ch - '0')
			if f[field] > (1<<63-1-d)/10 {
				return 0, 0, false
			}
			f[field] = f[field]*10 + d
			digits++
		case ch == ' ' || ch == '\n':
			if digits > 0 {
				if field == 1 {
					return f[0], f[1], true
				}
				field++
			}
			digits = 0
		default:
			return 0, 0, false
		}
	}
	if field == 1 && digits > 0 {
		return f[0], f[1], true
	}
	return 0, 0, false
}
