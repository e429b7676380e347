//go:build linux

package uring

import (
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"unsafe"
)

// drain reads and discards everything the peers receive, until they close.
func drain(peers []net.Conn) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(io.Discard, p) }()
	}
	return &wg
}

const benchConns = 50

var msg = make([]byte, 64)

// BenchmarkWriteEach sends 64 bytes to each of 50 sockets with one
// write(2) each, as the epoll loop does; one op is one round.
func BenchmarkWriteEach(b *testing.B) {
	fds, peers := socketPairs(b, benchConns)
	drain(peers)
	b.ResetTimer()
	for b.Loop() {
		for _, fd := range fds {
			for {
				_, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)))
				if e != syscall.EAGAIN {
					break
				}
			}
		}
	}
}

// BenchmarkSendBatch sends the same with one io_uring_enter per round.
func BenchmarkSendBatch(b *testing.B) {
	fds, peers := socketPairs(b, benchConns)
	drain(peers)
	r := newRing(b, 64)
	res := make([]int32, benchConns)
	b.ResetTimer()
	for b.Loop() {
		for _, fd := range fds {
			r.Send(fd, msg)
		}
		if err := r.Submit(res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNullSyscall is the cost of entering and leaving the kernel
// (getppid, which does nothing), what each system call a batch saves is
// worth on this machine.
func BenchmarkNullSyscall(b *testing.B) {
	for b.Loop() {
		syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
	}
}
