//go:build linux

package kvstore

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// How an event loop waits for events and makes its system calls without
// paying for the Go runtime's thread hand-offs (issue 12).
//
// A Go system call made with syscall.Syscall tells the scheduler that the
// goroutine may block: the runtime's monitor thread (sysmon) then finds
// the loop's P "in a system call", and when it stays there for one of its
// ticks (20 µs at first), takes the P away and wakes another thread to run
// it, which finds nothing to do and goes back to sleep; when the call
// returns, the loop must get its P back. Each of those steps is a futex
// wake-up or a context switch, and every P taken away restarts sysmon's
// 20 µs ticks (its nanosleeps). Redis's ae loop pays none of this: it
// calls epoll_wait, read and write, and nothing else. Counted with
// `perf stat` at 4 connections, pipeline 1 (BENCHMARKS.md): 0.50 context
// switches per request for kvd before, 0.12 for Redis.
//
// So a loop:
//
//   - reads and writes its sockets (non-blocking, they never sleep) with
//     raw system calls that the scheduler does not see, like any Go code
//     that runs for a microsecond;
//   - polls epoll with a zero timeout first, also raw, and only when
//     nothing is ready makes the blocking epoll_wait the runtime knows
//     about (gnet's poller does the same: epoll_wait with msec 0 while
//     busy, then -1);
//   - while it is busy (its last wait brought input from a client),
//     keeps polling for a short while (loopSpin) before it blocks, so that a request arriving a few microseconds after the
//     last one does not find the loop asleep in the kernel (the busy
//     polling of Linux's SO_BUSY_POLL and of DPDK-style loops, bounded);
//     spinning stops as soon as a spin finds nothing, and backs off when
//     spins keep finding nothing, so an idle loop blocks and uses no CPU;
//   - when busy with many clients, and while other threads want its core,
//     sleeps for a moment before it polls (loopNap, eventloop_nap_linux.go;
//     eventloop_contention_linux.go), so that it does not hold a core
//     until the scheduler's tick;
//   - yields to the scheduler at least every loopYieldEvery, so that
//     other goroutines sharing its P run, and so that sysmon, which takes
//     the P of a goroutine that has run for 10 ms without rescheduling
//     even while it waits in a system call, has no reason to.
//
// A blocking wait still enters the runtime (syscall.EpollWait): a
// goroutine that blocked in a raw system call would keep its P and stall
// the garbage collector's stop-the-world and the other goroutines.

const (
	// loopSpin is how long a loop that has just read requests keeps
	// polling for more before it blocks in epoll_wait.
	loopSpin = 50 * time.Microsecond
	// loopSpinBackoffMax caps the spin back-off: after k spins in a row
	// that found nothing (k <= this), a loop skips spinning for its next
	// 2^k - 1 waits.
	loopSpinBackoffMax = 6
	// loopYieldEvery is the longest a loop runs without yielding its P.
	loopYieldEvery = time.Millisecond
)

// loopWait is the waiting state of one loop.
type loopWait struct {
	spin       time.Duration  // how long to spin while busy; 0: never
	busy       bool           // the last wait returned input from a client
	misses     int            // spins in a row that found nothing
	skip       int            // waits left before spinning again
	lastYield  time.Duration  // loop clock at the last runtime.Gosched
	napping    loopNapping    // whether to nap before polling (see loopNap)
	contention loopContention // whether others want the loop's core (naps help only then)
}

// wait returns the number of ready events in l.events, waiting at most
// timeoutMs milliseconds (-1: forever) when nothing is ready.
func (l *eventLoop) wait(timeoutMs int) (int, error) {
	w := &l.waitState
	if l.now-w.lastYield >= loopYieldEvery {
		runtime.Gosched()
		w.lastYield = time.Since(l.start)
	}
	w.napping.update(l.now)
	w.contention.update(l.now)
	if w.busy && w.napping.on && !w.contention.alone && timeoutMs != 0 {
		napNow(w.napping.nap)
		l.naps.Add(1)
	}
	n, err := epollPoll(l.epfd, l.events)
	if n > 0 || err != nil {
		return l.done(n, err)
	}
	if w.spin > 0 && w.busy && timeoutMs != 0 {
		if w.skip > 0 {
			w.skip--
		} else if n, err := l.spinPoll(w.spin); n > 0 || err != nil {
			w.misses = 0
			return l.done(n, err)
		} else {
			w.misses = min(w.misses+1, loopSpinBackoffMax)
			w.skip = 1<<w.misses - 1
		}
	}
	if timeoutMs == 0 {
		return l.done(0, nil)
	}
	if len(l.durWait) > 0 {
		// Nothing more came to join the log's group commit: it need
		// not wait for more (see wal.Log.EndWindow).
		l.srv.store.dur.log.EndWindow()
	}
	n, err = syscall.EpollWait(l.epfd, l.events, timeoutMs)
	if err == syscall.EINTR {
		n, err = 0, nil
	}
	return l.done(n, err)
}

// spinPoll polls l's epoll set with zero timeouts for up to d, and
// returns as soon as something is ready.
func (l *eventLoop) spinPoll(d time.Duration) (int, error) {
	w := &l.waitState
	end := time.Since(l.start) + d
	for {
		// The clock is read before polling: a loop that the kernel
		// preempted in the middle of its spin (its core was needed
		// elsewhere) does not count what arrived meanwhile as a catch.
		now := time.Since(l.start)
		if now >= end {
			return 0, nil
		}
		if now-w.lastYield >= loopYieldEvery {
			runtime.Gosched()
			w.lastYield = now
		}
		if n, err := epollPoll(l.epfd, l.events); n > 0 || err != nil {
			return n, err
		}
	}
}

// done records whether the events just returned include input from a
// client: spinning is for catching the next request, not for waiting
// until a slow reader makes room for more output.
func (l *eventLoop) done(n int, err error) (int, error) {
	busy := false
	for i := range n {
		if ev := &l.events[i]; ev.Events&syscall.EPOLLIN != 0 && ev.Fd != int32(l.evfd) {
			busy = true
			break
		}
	}
	l.waitState.busy = busy
	return n, err
}

// epollPoll is epoll_wait with a zero timeout, as a raw system call (it
// never sleeps). EINTR counts as nothing ready.
func epollPoll(epfd int, events []syscall.EpollEvent) (int, error) {
	// epoll_pwait with a nil signal mask is epoll_wait, and exists on
	// every Linux architecture (arm64 has no epoll_wait).
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
	switch e {
	case 0:
		return int(r), nil
	case syscall.EINTR:
		return 0, nil
	}
	return 0, e
}

// rawRead is read(2) on a non-blocking descriptor, as a raw system call.
// It returns -1 and the error on failure, as syscall.Read does.
func rawRead(fd int, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// rawWrite is write(2) on a non-blocking descriptor, as a raw system
// call. It returns -1 and the error on failure, as syscall.Write does.
func rawWrite(fd int, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
