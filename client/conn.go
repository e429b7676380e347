package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// call is one request on its way: the request line, and the response (or
// error) the connection's reader hands back. Calls are recycled through
// callPool; a call whose caller gave up (its context ended) is recycled by
// the reader once the response has arrived.
type call struct {
	req  []byte // the request line, with its "\n"
	resp response
	err  error
	// state is callWaiting until the reader finishes the call (callDone)
	// or the caller abandons it (callAbandoned); whoever moves it second
	// recycles the call.
	state atomic.Int32
	done  chan struct{} // receives one value when state becomes callDone
}

const (
	callWaiting int32 = iota
	callDone
	callAbandoned
)

// Requests longer than this are not kept in recycled calls.
const maxPooledRequest = 64 << 10

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(cl *call) {
	if cap(cl.req) > maxPooledRequest {
		cl.req = nil
	}
	cl.req = cl.req[:0]
	cl.resp = response{}
	cl.err = nil
	cl.state.Store(callWaiting)
	callPool.Put(cl)
}

// finish hands the response (or error) to the caller, or recycles the call
// if the caller has given up on it.
func (cl *call) finish(resp response, err error) {
	cl.resp, cl.err = resp, err
	if cl.state.CompareAndSwap(callWaiting, callDone) {
		cl.done <- struct{}{}
		return
	}
	putCall(cl)
}

// conn is one connection to the server, shared by any number of
// goroutines: send appends a request to the write buffer and to the FIFO
// of calls waiting for a response, and the first sender to find no write
// in progress writes everything buffered, including what other goroutines
// append meanwhile (automatic pipelining). readLoop matches each response
// line to the oldest waiting call.
type conn struct {
	nc      net.Conn
	br      *bufio.Reader
	maxLine int
	stall   time.Duration // see WithStallTimeout; 0: never
	onClose func(*conn)   // called once, when the connection fails or closes

	mu       sync.Mutex
	wbuf     []byte  // requests not yet written
	spare    []byte  // the other write buffer, swapped with wbuf
	flushing bool    // a sender is writing; it also writes what others append
	queue    []*call // calls waiting for a response, oldest at head
	head     int
	err      error // why the connection failed; nil while it works
	// waitingSince is when the server last made progress for the calls
	// in queue: the oldest was queued, or a response arrived. Meaningful
	// only while queue is not empty.
	waitingSince time.Time

	broken atomic.Bool   // err != nil, readable without mu
	exited chan struct{} // closed when readLoop returns
}

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

func newConn(nc net.Conn, maxLine int, stall time.Duration, onClose func(*conn)) *conn {
	c := &conn{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, 16<<10),
		maxLine: maxLine,
		stall:   stall,
		onClose: onClose,
		exited:  make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// roundTrip sends cl.req and waits for its response. cl is recycled before
// roundTrip returns (or, when ctx ends first, by the reader later). A
// non-nil error is a network or protocol error, or ctx's error; Error
// responses are returned as a response with ok == false.
func (c *conn) roundTrip(ctx context.Context, cl *call) (response, error) {
	if err := ctx.Err(); err != nil {
		putCall(cl)
		return response{}, err
	}
	if err := c.send(ctx, cl); err != nil {
		putCall(cl)
		return response{}, err
	}
	if done := ctx.Done(); done != nil {
		select {
		case <-cl.done:
		case <-done:
			if cl.state.CompareAndSwap(callWaiting, callAbandoned) {
				// The reader will read the response, drop it and
				// recycle cl.
				c.checkStalled()
				return response{}, ctx.Err()
			}
			<-cl.done // the response arrived just in time
		}
	} else {
		<-cl.done
	}
	resp, err := cl.resp, cl.err
	putCall(cl)
	return resp, err
}

// send queues cl and makes sure its request gets written: by this
// goroutine, or by the one already writing. A write error fails the
// connection and every queued call with it (cl included), so send returns
// an error only when cl was not queued at all.
func (c *conn) send(ctx context.Context, cl *call) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.wbuf = append(c.wbuf, cl.req...)
	if c.head == len(c.queue) && c.stall > 0 {
		c.waitingSince = time.Now()
	}
	c.queue = append(c.queue, cl)
	if c.flushing {
		c.mu.Unlock()
		return nil
	}
	c.flushing = true
	failed := false
	for len(c.wbuf) > 0 && c.err == nil {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.mu.Unlock()
		err := c.write(ctx, buf)
		c.mu.Lock()
		if cap(buf) <= maxPooledRequest {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.failLocked(fmt.Errorf("client: write to %s: %w", c.nc.RemoteAddr(), err))
			failed = true
		}
	}
	c.flushing = false
	c.mu.Unlock()
	if failed {
		c.nc.Close()
	}
	return nil
}

// write writes buf, giving up when ctx ends. A write cut short leaves the
// stream in an unknown state, so the caller fails the connection.
func (c *conn) write(ctx context.Context, buf []byte) error {
	if ctx.Done() == nil {
		_, err := c.nc.Write(buf)
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.nc.SetWriteDeadline(aLongTimeAgo)
		close(fired)
	})
	_, err := c.nc.Write(buf)
	if !stop() {
		<-fired
		if err == nil {
			c.nc.SetWriteDeadline(time.Time{})
		} else {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}
	return err
}

// readLoop reads response lines and finishes the waiting calls in order,
// until the connection fails.
func (c *conn) readLoop() {
	defer close(c.exited)
	var long []byte
	for {
		line, err := readLine(c.br, &long, c.maxLine)
		if err != nil {
			c.fail(fmt.Errorf("client: connection to %s: %w", c.nc.RemoteAddr(), err))
			return
		}
		resp, perr := parseResponse(line)
		c.mu.Lock()
		if c.head == len(c.queue) {
			c.mu.Unlock()
			// A line nobody asked for: a server that rejects the
			// connection (too many clients, protected mode) says why in
			// one Error line and closes.
			if perr == nil && !resp.ok {
				c.fail(&ServerError{Mesg: resp.mesg})
			} else {
				c.fail(protocolError(line, "response without a request"))
			}
			return
		}
		if perr != nil {
			// Fail the connection before its caller hears of the error,
			// so that the caller's next request goes elsewhere.
			c.mu.Unlock()
			c.fail(perr)
			return
		}
		cl := c.queue[c.head]
		c.queue[c.head] = nil
		c.head++
		if c.stall > 0 && c.head < len(c.queue) {
			c.waitingSince = time.Now()
		}
		if c.head == len(c.queue) {
			c.queue, c.head = c.queue[:0], 0
		} else if c.head >= 1024 && c.head*2 >= len(c.queue) {
			n := copy(c.queue, c.queue[c.head:])
			clear(c.queue[n:])
			c.queue, c.head = c.queue[:n], 0
		}
		c.mu.Unlock()
		cl.finish(resp, nil)
	}
}

// errStalled is the error of calls on a connection that the Client gave
// up on because the server answered nothing for WithStallTimeout while
// requests were waiting.
var errStalled = errors.New("server answered nothing for the stall timeout; connection closed")

// checkStalled fails the connection when requests have been waiting
// longer than the stall timeout without any response. It runs when a
// caller gives up on a call, so a server that stops answering (without
// closing) costs a Client at most one stall timeout per connection.
func (c *conn) checkStalled() {
	if c.stall <= 0 {
		return
	}
	c.mu.Lock()
	stalled := c.err == nil && c.head < len(c.queue) && time.Since(c.waitingSince) > c.stall
	if stalled {
		c.failLocked(fmt.Errorf("client: %s: %w", c.nc.RemoteAddr(), errStalled))
	}
	c.mu.Unlock()
	if stalled {
		c.nc.Close()
	}
}

// errLineTooLong is returned by readLine for a line past the limit.
var errLineTooLong = errors.New("response line too long")

// readLine returns the next line, with its "\n". The line is valid until
// the next call; long lines are assembled in *long.
func readLine(br *bufio.Reader, long *[]byte, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		return line, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	buf := append((*long)[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if len(buf) > max {
			return nil, fmt.Errorf("%w: %w (over %d bytes)", ErrProtocol, errLineTooLong, max)
		}
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
	}
	if cap(buf) <= 1<<20 {
		*long = buf
	} else {
		*long = nil
	}
	if err != nil {
		return nil, err
	}
	if len(buf) > max+1 {
		return nil, fmt.Errorf("%w: %w (over %d bytes)", ErrProtocol, errLineTooLong, max)
	}
	return buf, nil
}

// fail marks the connection failed with err (the first error wins),
// closes it, and finishes every waiting call with the error.
func (c *conn) fail(err error) {
	c.mu.Lock()
	c.failLocked(err)
	c.mu.Unlock()
	c.nc.Close()
}

// failLocked is fail without closing the socket, for callers that hold
// c.mu; they close c.nc after unlocking.
func (c *conn) failLocked(err error) {
	first := c.err == nil
	if first {
		c.err = err
		c.broken.Store(true)
	}
	calls := c.queue[c.head:]
	c.queue, c.head = nil, 0
	for _, cl := range calls {
		cl.finish(response{}, c.err)
	}
	if first && c.onClose != nil {
		go c.onClose(c)
	}
}

// close closes the connection; waiting calls fail with err.
func (c *conn) close(err error) {
	c.fail(err)
	<-c.exited
}
