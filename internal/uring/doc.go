// Package uring submits batches of non-blocking socket sends and receives
// to Linux's io_uring, so that an event loop makes one system call for
// the reads or the writes of all its ready connections instead of one per
// connection.
//
// It is deliberately small: a Ring queues IORING_OP_SEND and
// IORING_OP_RECV entries, each with MSG_DONTWAIT so that none is ever
// left waiting in the kernel (a socket with no room or no data completes
// at once with -EAGAIN), submits them with one io_uring_enter, and reads
// their results back from the completion queue. There is no polling
// thread, no registered buffers and no multishot operation. The package
// is Linux's only; where the kernel refuses io_uring, New returns
// ErrUnsupported and the caller makes plain system calls instead.
package uring
