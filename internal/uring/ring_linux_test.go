//go:build linux

package uring

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// socketPairs makes n connected loopback TCP pairs and returns the
// descriptors of one side (non-blocking, owned by the test) and the
// net.Conns of the other.
func socketPairs(tb testing.TB, n int) ([]int, []net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	fds := make([]int, n)
	peers := make([]net.Conn, n)
	for i := range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		p, err := ln.Accept()
		if err != nil {
			tb.Fatal(err)
		}
		raw, _ := c.(*net.TCPConn).SyscallConn()
		raw.Control(func(f uintptr) {
			fd, err := syscall.Dup(int(f))
			if err != nil {
				tb.Fatal(err)
			}
			fds[i] = fd
		})
		c.Close()
		peers[i] = p
	}
	tb.Cleanup(func() {
		for i := range n {
			syscall.Close(fds[i])
			peers[i].Close()
		}
	})
	return fds, peers
}

func newRing(tb testing.TB, n uint32) *Ring {
	tb.Helper()
	r, err := New(n)
	if err == ErrUnsupported {
		tb.Skip("no io_uring on this kernel")
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// TestSendRecv sends a different message on each of several sockets in
// one batch, receives them back on the peers' side in another, and checks
// every byte and result.
func TestSendRecv(t *testing.T) {
	const n = 8
	fds, peers := socketPairs(t, n)
	r := newRing(t, 16)
	res := make([]int32, r.Cap())
	msgs := make([][]byte, n)
	for i, fd := range fds {
		msgs[i] = []byte(fmt.Sprintf("message %d to socket %d\n", i*i, fd))
		if !r.Send(fd, msgs[i]) {
			t.Fatalf("Send %d refused with %d queued of %d", i, r.Queued(), r.Cap())
		}
	}
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if int(res[i]) != len(msgs[i]) {
			t.Errorf("send %d: result %d, want %d", i, res[i], len(msgs[i]))
		}
		got := make([]byte, len(msgs[i]))
		peers[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(peers[i], got); err != nil || !bytes.Equal(got, msgs[i]) {
			t.Errorf("peer %d read %q, %v; want %q", i, got, err, msgs[i])
		}
	}

	// And back: the peers write, one batch receives.
	for i, p := range peers {
		if _, err := p.Write([]byte(strings.Repeat(string(rune('a'+i)), i+1))); err != nil {
			t.Fatal(err)
		}
	}
	bufs := make([][]byte, n)
	for i, fd := range fds {
		bufs[i] = make([]byte, 64)
		// Each peer's bytes may not have reached this side yet: wait
		// until the socket is readable.
		waitReadable(t, fd)
		r.Recv(fd, bufs[i])
	}
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		want := strings.Repeat(string(rune('a'+i)), i+1)
		if int(res[i]) != len(want) || string(bufs[i][:len(want)]) != want {
			t.Errorf("recv %d: result %d, %q; want %q", i, res[i], bufs[i][:max(res[i], 0)], want)
		}
	}
}

// waitReadable polls fd until it has input.
func waitReadable(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var b [1]byte
	for {
		n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if n > 0 {
			return
		}
		if err != syscall.EAGAIN || time.Now().After(deadline) {
			t.Fatalf("socket %d not readable: %d, %v", fd, n, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNonBlocking: a receive with no data and a send into a full socket
// complete at once, with EAGAIN and a short count, instead of waiting in
// the kernel; a closed descriptor gives EBADF; the batch's other
// operations are unaffected.
func TestNonBlocking(t *testing.T) {
	fds, peers := socketPairs(t, 3)
	_ = peers
	r := newRing(t, 8)
	res := make([]int32, r.Cap())

	empty := make([]byte, 16)
	r.Recv(fds[0], empty)
	r.Send(fds[1], []byte("ok"))
	r.Recv(-1, empty)
	done := make(chan error, 1)
	go func() { done <- r.Submit(res) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Submit waited for a receive with no data")
	}
	if res[0] != -int32(syscall.EAGAIN) || res[1] != 2 || res[2] != -int32(syscall.EBADF) {
		t.Errorf("results %v, want [-EAGAIN 2 -EBADF]", res[:3])
	}

	// Fill fds[2]'s send buffer (its peer never reads): the batch's
	// sends come back short, then with EAGAIN.
	big := make([]byte, 4<<20)
	total := 0
	for i := 0; ; i++ {
		r.Send(fds[2], big)
		if err := r.Submit(res); err != nil {
			t.Fatal(err)
		}
		if res[0] == -int32(syscall.EAGAIN) {
			break
		}
		if res[0] <= 0 || i > 1000 {
			t.Fatalf("send %d into a socket nobody reads: %d", i, res[0])
		}
		total += int(res[0])
	}
	if total == 0 || total > 64<<20 {
		t.Errorf("%d bytes taken before EAGAIN", total)
	}
}

// TestBatchFull: Send and Recv refuse past Cap until Submit.
func TestBatchFull(t *testing.T) {
	fds, _ := socketPairs(t, 1)
	r := newRing(t, 4)
	res := make([]int32, r.Cap())
	for i := range r.Cap() {
		if !r.Send(fds[0], []byte("x")) {
			t.Fatalf("Send %d refused below Cap %d", i, r.Cap())
		}
	}
	if r.Send(fds[0], []byte("x")) || r.Recv(fds[0], make([]byte, 1)) {
		t.Fatal("an operation past Cap was accepted")
	}
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
	for i := range r.Cap() {
		if res[i] != 1 {
			t.Errorf("send %d: %d", i, res[i])
		}
	}
	if r.Queued() != 0 || !r.Send(fds[0], []byte("x")) {
		t.Fatal("the batch is not empty after Submit")
	}
	if err := r.Submit(res); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitFailure: when io_uring_enter fails, every result of the batch
// is EIO (whatever the results array held before), and the ring stays
// broken.
func TestSubmitFailure(t *testing.T) {
	fds, _ := socketPairs(t, 2)
	r := newRing(t, 4)
	res := make([]int32, r.Cap())
	r.Send(fds[0], []byte("ok"))
	r.Recv(fds[1], make([]byte, 4))
	if err := r.Submit(res); err != nil || res[0] != 2 || res[1] != -int32(syscall.EAGAIN) {
		t.Fatalf("before the break: %v, %v", res[:2], err)
	}
	// The ring's descriptor becomes /dev/null: io_uring_enter fails.
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if err := syscall.Dup3(int(null.Fd()), r.FD(), syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		r.Send(fds[0], []byte("ok"))
		r.Recv(fds[1], make([]byte, 4))
		err := r.Submit(res)
		if err == nil || res[0] != -int32(syscall.EIO) || res[1] != -int32(syscall.EIO) {
			t.Errorf("round %d after the break: %v, %v; want an error and EIO for both", round, res[:2], err)
		}
		if r.Queued() != 0 {
			t.Errorf("round %d: %d operations still queued", round, r.Queued())
		}
	}
}
