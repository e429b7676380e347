package wal

import (
	"errors"
	"testing"
	"time"
)

// newTestLog starts a SyncEach Log on a fresh segment of a StrictMem.
func newTestLog(t *testing.T) (*Log, *StrictMem) {
	t.Helper()
	return newTestLogAt(t, Options{Mode: SyncEach}, 0)
}

// newTestLogAt starts a Log with opts (FS and Dir filled in) on a fresh
// segment of a StrictMem, as if it held records up to lastTs.
func newTestLogAt(t *testing.T, opts Options, lastTs uint64) (*Log, *StrictMem) {
	t.Helper()
	m := NewStrictMem()
	return startTestLog(t, m, opts, lastTs), m
}

// startTestLog starts a Log with opts (FS and Dir filled in) on a fresh
// segment (named for timestamp 1) in the directory /d of m, as if it
// held records up to lastTs.
func startTestLog(t *testing.T, m *StrictMem, opts Options, lastTs uint64) *Log {
	t.Helper()
	m.MkdirAll("/d")
	f, err := m.Create("/d/" + SegmentName(1))
	if err != nil {
		t.Fatal(err)
	}
	hdr := AppendFileHeader(nil, KindLog)
	if _, err := f.Write(hdr); err != nil {
		t.Fatal(err)
	}
	opts.FS, opts.Dir = m, "/d"
	return NewLog(opts, f, int64(len(hdr)), lastTs+1, lastTs)
}

// appendRecord appends a one-put commit record at ts.
func appendRecord(t *testing.T, l *Log, ts uint64) {
	t.Helper()
	buf, off, err := l.BeginRecord()
	if err != nil {
		t.Fatal(err)
	}
	buf = AppendCommitHeader(buf, ts, 1)
	buf = AppendPut(buf, "k", "v", 0)
	l.EndRecord(buf, off, ts)
}

// TestWaiterWokenWhenDurable: a Waiter that wants a record not yet
// synced (the disk holds the sync) is woken once it is, and
// DurableOrErr then says so.
func TestWaiterWokenWhenDurable(t *testing.T) {
	l, m := newTestLog(t)
	defer l.Close()
	woke := make(chan struct{}, 8)
	w := l.NewWaiter(func() { woke <- struct{}{} })
	defer l.RemoveWaiter(w)

	m.HoldSyncs(true)
	appendRecord(t, l, 1)
	w.Want(1)
	if ok, err := l.DurableOrErr(1); ok || err != nil {
		t.Fatalf("DurableOrErr(1) = %v, %v with the sync held", ok, err)
	}
	m.HoldSyncs(false)
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken after the sync")
	}
	if ok, err := l.DurableOrErr(1); !ok || err != nil {
		t.Fatalf("DurableOrErr(1) = %v, %v after the wake-up", ok, err)
	}
}

// TestWaiterWokenOnFailure: a failed sync wakes the Waiter, and
// DurableOrErr then reports the failure instead of waiting forever.
func TestWaiterWokenOnFailure(t *testing.T) {
	l, m := newTestLog(t)
	defer l.Close()
	woke := make(chan struct{}, 8)
	w := l.NewWaiter(func() { woke <- struct{}{} })
	defer l.RemoveWaiter(w)

	m.FailSyncs(true)
	w.Want(1)
	appendRecord(t, l, 1)
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken by the failed sync")
	}
	if ok, err := l.DurableOrErr(1); ok || !errors.Is(err, ErrFailed) {
		t.Fatalf("DurableOrErr(1) = %v, %v; want ErrFailed", ok, err)
	}
}
