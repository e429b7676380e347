package wal

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// newSelfSyncLog is newTestLog with the segment's name made durable, so
// that a crash keeps the file.
func newSelfSyncLog(t *testing.T) (*Log, *StrictMem) {
	t.Helper()
	l, m := newTestLog(t)
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	return l, m
}

// syncedCommits reads back, after m.Crash, the commit timestamps of the
// records of the segment that starts at 1.
func syncedCommits(t *testing.T, m *StrictMem) []uint64 {
	t.Helper()
	f, err := m.Open("/d/" + SegmentName(1))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f, KindLog)
	if err != nil {
		t.Fatal(err)
	}
	var tss []uint64
	for {
		p, err := r.Next()
		if err == io.EOF {
			return tss
		}
		if err != nil {
			t.Fatalf("after %d records: %v", len(tss), err)
		}
		var c Commit
		if err := DecodeCommit(p, &c); err != nil {
			t.Fatal(err)
		}
		tss = append(tss, c.TS)
	}
}

// waitDurable polls l until its durable point reaches ts, for at most
// ten seconds.
func waitDurable(t *testing.T, l *Log, ts uint64) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); l.Durable() < ts; {
		if time.Now().After(end) {
			t.Fatalf("durable point %d, never reached %d", l.Durable(), ts)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSyncFromCaller: while a caller syncs itself, records wait in the
// buffer for it (the writer is not woken for each), and its Sync writes
// and syncs them all at once: they survive a crash.
func TestSyncFromCaller(t *testing.T) {
	l, m := newSelfSyncLog(t)
	l.SyncsItself(true)
	appendRecord(t, l, 1)
	appendRecord(t, l, 2)
	time.Sleep(20 * time.Millisecond)
	if l.Written() != 0 || l.Durable() != 0 {
		t.Fatalf("before Sync: Written %d, Durable %d; the writer took the records", l.Written(), l.Durable())
	}
	if err := l.Sync(1); err != nil {
		t.Fatal(err)
	}
	if l.Written() != 2 || l.Durable() != 2 {
		t.Fatalf("after Sync(1): Written %d, Durable %d; want 2 (everything buffered)", l.Written(), l.Durable())
	}
	if err := l.Sync(2); err != nil { // covered already
		t.Fatal(err)
	}
	m.Crash()
	if got := syncedCommits(t, m); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("after a crash the log holds commits %v, want [1 2]", got)
	}
	l.SyncsItself(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWaitersWakeWriterWhileCallerSyncs: while some caller syncs itself,
// EndRecord leaves the writer asleep, so a goroutine that waits for a
// record in WaitDurable, or through a Waiter, must wake it (or it would
// wait until that caller's next Sync, perhaps forever).
func TestWaitersWakeWriterWhileCallerSyncs(t *testing.T) {
	l, _ := newTestLog(t)
	defer l.Close()
	l.SyncsItself(true)
	defer l.SyncsItself(false)

	appendRecord(t, l, 1)
	done := make(chan error, 1)
	go func() { done <- l.WaitDurable(1) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitDurable(1) never returned: nobody woke the writer")
	}

	woke := make(chan struct{}, 8)
	w := l.NewWaiter(func() { woke <- struct{}{} })
	defer l.RemoveWaiter(w)
	appendRecord(t, l, 2)
	w.Want(2)
	if ok, _ := l.DurableOrErr(2); !ok {
		select {
		case <-woke:
		case <-time.After(10 * time.Second):
			t.Fatal("Waiter for 2 never woken: nobody woke the writer")
		}
	}
	waitDurable(t, l, 2)
}

// TestSyncsItselfOffWakesWriter: records appended while a caller synced
// itself are synced by the writer once the last such caller stops, with
// nobody waiting for them.
func TestSyncsItselfOffWakesWriter(t *testing.T) {
	l, _ := newTestLog(t)
	defer l.Close()
	l.SyncsItself(true)
	appendRecord(t, l, 1)
	l.SyncsItself(false)
	waitDurable(t, l, 1)
}

// TestSyncConcurrentWithWriter: goroutines that sync themselves and
// goroutines that wait for the writer commit side by side: every Sync
// and WaitDurable returns with its record durable, the durable point
// never goes back, and after a crash the log holds every commit, in
// order.
func TestSyncConcurrentWithWriter(t *testing.T) {
	l, m := newSelfSyncLog(t)
	var mu sync.Mutex // records are appended in commit order
	next := uint64(0)
	var wg sync.WaitGroup
	for g := range 4 {
		self := g%2 == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			if self {
				l.SyncsItself(true)
				defer l.SyncsItself(false)
			}
			var seen uint64
			for range 300 {
				mu.Lock()
				next++
				ts := next
				appendRecord(t, l, ts)
				mu.Unlock()
				var err error
				if self {
					err = l.Sync(ts)
				} else {
					err = l.WaitDurable(ts)
				}
				if err != nil {
					t.Error(err)
					return
				}
				d := l.Durable()
				if d < ts || d < seen {
					t.Errorf("after committing %d: durable %d (earlier %d)", ts, d, seen)
					return
				}
				seen = d
			}
		}()
	}
	wg.Wait()
	m.Crash()
	got := syncedCommits(t, m)
	if uint64(len(got)) != next {
		t.Fatalf("after a crash the log holds %d commits, want %d", len(got), next)
	}
	for i, ts := range got {
		if ts != uint64(i+1) {
			t.Fatalf("commit %d of the log is %d", i+1, ts)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSyncFailure: a failed fsync in a caller's Sync fails the Sync and
// the log, and wakes the writer's waiters with the failure.
func TestSyncFailure(t *testing.T) {
	l, m := newTestLog(t)
	defer l.Close()
	l.SyncsItself(true)
	defer l.SyncsItself(false)
	appendRecord(t, l, 1)
	m.FailSyncs(true)
	if err := l.Sync(1); !errors.Is(err, ErrFailed) {
		t.Fatalf("Sync with a failing disk: %v", err)
	}
	if err := l.WaitDurable(1); !errors.Is(err, ErrFailed) {
		t.Fatalf("WaitDurable(1) after the failed Sync: %v", err)
	}
	if _, _, err := l.BeginRecord(); !errors.Is(err, ErrFailed) {
		t.Fatalf("BeginRecord after the failed Sync: %v", err)
	}
}
