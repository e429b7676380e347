package wal

import "sync/atomic"

// How a goroutine that must not block (an event loop) learns that a
// record is durable: it checks with DurableOrErr, and when the record is
// not synced yet, asks the log's writer to wake it (Waiter.Want) instead
// of waiting in WaitDurable.

// DurableOrErr reports, without waiting, whether the record of timestamp
// ts is synced; if it is not and never will be (the log failed, or closed
// without it), it returns the error WaitDurable would.
func (l *Log) DurableOrErr(ts uint64) (bool, error) { return l.reachedOrErr(&l.durable, ts) }

// A Waiter is a way to learn, without blocking a goroutine, that the
// log's durable point has reached a timestamp: an event loop that keeps
// serving other clients while some of its responses wait for the log
// registers one (NewWaiter) with a function that wakes it, and says
// what it waits for with Want. The log's writer calls the function once
// the durable point reaches that timestamp, or when the log fails or
// closes; then the Waiter wants nothing until Want is called again.
type Waiter struct {
	want atomic.Uint64 // 0: nothing
	wake func()
	log  *Log
}

// NewWaiter registers a Waiter whose wake function the log's writer
// calls (see Waiter); wake must not block. Remove it with RemoveWaiter.
func (l *Log) NewWaiter(wake func()) *Waiter {
	w := &Waiter{wake: wake, log: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	var ws []*Waiter
	if p := l.waiters.Load(); p != nil {
		ws = append(ws, *p...)
	}
	ws = append(ws, w)
	l.waiters.Store(&ws)
	return w
}

// RemoveWaiter unregisters w.
func (l *Log) RemoveWaiter(w *Waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.waiters.Load()
	if p == nil {
		return
	}
	ws := make([]*Waiter, 0, len(*p))
	for _, o := range *p {
		if o != w {
			ws = append(ws, o)
		}
	}
	l.waiters.Store(&ws)
}

// Want makes w wait for the record of timestamp ts: the writer calls
// w's wake function once it is synced, or the log fails or closes. The
// caller checks the log (DurableOrErr) after Want, since the record may
// have been synced just before. Want(0) cancels.
func (w *Waiter) Want(ts uint64) {
	w.want.Store(ts)
	if ts != 0 {
		w.log.wakeForWaiter()
	}
}

// notify wakes the waiters whose record is synced, or all of them when
// the log can sync no more (end).
func (l *Log) notify(end bool) {
	p := l.waiters.Load()
	if p == nil {
		return
	}
	d := l.durable.Load()
	for _, w := range *p {
		if want := w.want.Load(); want != 0 && (want <= d || end) && w.want.CompareAndSwap(want, 0) {
			w.wake()
		}
	}
}
