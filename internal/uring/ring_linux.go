//go:build linux

package uring

import (
	"errors"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Linux's io_uring ABI (include/uapi/linux/io_uring.h): only what a Ring
// uses.
const (
	sysIOURingSetup = 425
	sysIOURingEnter = 426

	offSQRing = 0
	offSQEs   = 0x10000000

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1

	enterGetEvents = 1 << 0

	opSend = 26
	opRecv = 27

	msgDontWait = 0x40 // MSG_DONTWAIT: EAGAIN rather than a wait
)

// params is struct io_uring_params.
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	sqOff        sqOffsets
	cqOff        cqOffsets
}

// sqOffsets is struct io_sqring_offsets.
type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqOffsets is struct io_cqring_offsets.
type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	bufIndex uint16
	persona  uint16
	spliceFD int32
	addr3    uint64
	pad2     uint64
}

// cqe is struct io_uring_cqe (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Ring is one io_uring instance used for batches of non-blocking sends
// and receives. It is not safe for concurrent use.
type Ring struct {
	fd      int
	ringMem []byte // the SQ and CQ rings (one mapping)
	sqeMem  []byte // the submission entries

	sqHead, sqTail *uint32
	sqMask         uint32
	sqArray        []uint32
	sqes           []sqe

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	keep   [][]byte // the buffers of the queued entries (see prep)
	queued int      // entries prepared and not submitted yet
	cap    int      // how many entries a batch may hold
	err    error    // the error that broke the ring (see Submit)
}

// ErrUnsupported is returned by New when the kernel has no usable
// io_uring (too old, or disabled by kernel.io_uring_disabled or a
// seccomp filter).
var ErrUnsupported = errors.New("uring: io_uring is not available")

// New sets up a ring for batches of up to entries operations (rounded up
// to a power of two by the kernel).
func New(entries uint32) (*Ring, error) {
	var p params
	fd, _, errno := syscall.RawSyscall(sysIOURingSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		if errno == syscall.ENOSYS || errno == syscall.EPERM || errno == syscall.EACCES {
			return nil, ErrUnsupported
		}
		return nil, errno
	}
	r := &Ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 || p.features&featNoDrop == 0 {
		r.Close()
		return nil, ErrUnsupported // kernels before 5.5
	}
	sqSize := p.sqOff.array + p.sqEntries*4
	cqSize := p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{}))
	size := max(sqSize, cqSize)
	mem, err := syscall.Mmap(r.fd, offSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.ringMem = mem
	sqeMem, err := syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.sqeMem = sqeMem
	base := unsafe.Pointer(unsafe.SliceData(mem))
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(unsafe.SliceData(sqeMem))), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	r.cap = int(min(p.sqEntries, p.cqEntries))
	r.keep = make([][]byte, r.cap)
	return r, nil
}

// Close releases the ring. Nothing may be queued.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		syscall.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.ringMem != nil {
		syscall.Munmap(r.ringMem)
		r.ringMem = nil
	}
	if r.fd >= 0 {
		err := syscall.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}

// FD is the ring's file descriptor (for tests that break it).
func (r *Ring) FD() int { return r.fd }

// Cap is the number of operations one batch may hold.
func (r *Ring) Cap() int { return r.cap }

// Queued is the number of operations prepared and not yet submitted.
func (r *Ring) Queued() int { return r.queued }

// Send queues a non-blocking send of p on the socket fd. Its result is
// the next index of the batch (Queued before the call). p must stay
// untouched until Submit returns. Send reports false when the batch is
// full (Submit first).
func (r *Ring) Send(fd int, p []byte) bool {
	return r.prep(opSend, fd, p)
}

// Recv queues a non-blocking receive into p from the socket fd, as Send
// does.
func (r *Ring) Recv(fd int, p []byte) bool {
	return r.prep(opRecv, fd, p)
}

func (r *Ring) prep(op uint8, fd int, p []byte) bool {
	if r.queued == r.cap {
		return false
	}
	tail := *r.sqTail + uint32(r.queued) // only this goroutine moves the tail
	i := tail & r.sqMask
	r.sqes[i] = sqe{
		opcode:   op,
		fd:       int32(fd),
		addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p)))),
		len:      uint32(len(p)),
		msgFlags: msgDontWait,
		userData: uint64(r.queued),
	}
	r.sqArray[i] = i
	// The entry holds p's address as a plain number, which neither keeps
	// p alive nor stops the compiler from putting p on a goroutine's
	// stack (which moves when it grows): keeping the slice here does both.
	r.keep[r.queued] = p
	r.queued++
	return true
}

// Submit hands the queued operations to the kernel in one system call and
// stores each one's result at its index in res (len(res) >= Queued()):
// the byte count, or a negated errno (-EAGAIN when the socket had no room
// or no data). Every operation has completed when Submit returns: they
// are non-blocking (MSG_DONTWAIT). If Submit fails, what the operations
// did is unknown (each may or may not have been made): every result is
// then -EIO, and the ring is broken: every later Submit fails the same
// way.
func (r *Ring) Submit(res []int32) error {
	n := r.queued
	r.queued = 0
	if n == 0 {
		return r.err
	}
	if r.err == nil {
		r.err = r.submit(res, n)
	}
	clear(r.keep[:n])
	if r.err != nil {
		for i := range n {
			res[i] = -int32(syscall.EIO)
		}
	}
	return r.err
}

func (r *Ring) submit(res []int32, n int) error {
	_ = res[n-1]
	atomic.StoreUint32(r.sqTail, *r.sqTail+uint32(n))
	// A raw system call: it never sleeps (min_complete 0), so the
	// scheduler need not know (as the event loop's raw reads and writes).
	for submitted := 0; submitted < n; {
		m, _, errno := syscall.RawSyscall6(sysIOURingEnter, uintptr(r.fd), uintptr(n-submitted), 0, 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		if m == 0 {
			return syscall.EBUSY
		}
		submitted += int(m)
	}
	for got := 0; got < n; {
		head := *r.cqHead
		tail := atomic.LoadUint32(r.cqTail)
		if head == tail {
			// Not all completed inline (none should go asynchronous
			// with MSG_DONTWAIT): wait for the rest, letting the
			// scheduler know that this call may block.
			_, _, errno := syscall.Syscall6(sysIOURingEnter, uintptr(r.fd), 0, uintptr(n-got), enterGetEvents, 0, 0)
			if errno != 0 && errno != syscall.EINTR {
				return errno
			}
			continue
		}
		for ; head != tail; head++ {
			c := &r.cqes[head&r.cqMask]
			if c.userData < uint64(n) {
				res[c.userData] = c.res
			}
			got++
		}
		atomic.StoreUint32(r.cqHead, head)
	}
	return nil
}
