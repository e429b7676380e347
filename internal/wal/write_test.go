package wal

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// segmentSize is the size of the log's open segment in m.
func segmentSize(m *StrictMem, firstTs uint64) int64 {
	return m.Size("/d/" + SegmentName(firstTs))
}

// TestWriteHandsRecordsToTheOS: under SyncInterval and SyncNever a record
// stays in the buffer until Write (or the writer's interval); Write puts
// every buffered record in the file at once, from the caller, and leaves
// the sync for the interval.
func TestWriteHandsRecordsToTheOS(t *testing.T) {
	for _, mode := range []Mode{SyncInterval, SyncNone} {
		l, m := newTestLogAt(t, Options{Mode: mode, Interval: time.Hour}, 0)
		hdr := segmentSize(m, 1)
		appendRecord(t, l, 1)
		appendRecord(t, l, 2)
		time.Sleep(10 * time.Millisecond)
		if got := segmentSize(m, 1); got != hdr {
			t.Fatalf("mode %d: segment grew to %d bytes before any Write (header %d)", mode, got, hdr)
		}
		if l.Written() != 0 {
			t.Fatalf("mode %d: Written = %d before any Write", mode, l.Written())
		}
		if err := l.Write(1); err != nil {
			t.Fatal(err)
		}
		if l.Written() != 2 || segmentSize(m, 1) <= hdr {
			t.Fatalf("mode %d: after Write(1): Written %d, segment %d bytes", mode, l.Written(), segmentSize(m, 1))
		}
		if l.Durable() != 0 {
			t.Fatalf("mode %d: Write synced (Durable %d)", mode, l.Durable())
		}
		m.Crash() // the machine goes down before the interval: unsynced records go
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIdleTickKeepsWritten: the writer's tick on a log with nothing
// buffered since it started leaves Written and Durable at the last record
// it was opened with (a regression: they went back to 0, and responses
// waiting for the log waited forever).
func TestIdleTickKeepsWritten(t *testing.T) {
	l, _ := newTestLogAt(t, Options{Mode: SyncInterval, Interval: time.Millisecond}, 41)
	defer l.Close()
	time.Sleep(20 * time.Millisecond)
	if l.Written() != 41 || l.Durable() != 41 {
		t.Fatalf("after idle ticks: Written %d, Durable %d; want 41", l.Written(), l.Durable())
	}
	if err := l.Write(41); err != nil {
		t.Fatal(err)
	}
}

// TestWriteConcurrentWithSyncs: many goroutines append and Write while the
// writer syncs every millisecond: every Write returns with its record
// written, Written never goes back, and after Close everything is synced.
func TestWriteConcurrentWithSyncs(t *testing.T) {
	l, _ := newTestLogAt(t, Options{Mode: SyncInterval, Interval: time.Millisecond}, 0)
	var mu sync.Mutex // records are appended in commit order
	next := uint64(0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				mu.Lock()
				next++
				ts := next
				appendRecord(t, l, ts)
				mu.Unlock()
				if err := l.Write(ts); err != nil {
					t.Error(err)
					return
				}
				if w := l.Written(); w < ts {
					t.Errorf("Write(%d) returned with Written %d", ts, w)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Durable() != next {
		t.Fatalf("after Close: Durable %d, want %d", l.Durable(), next)
	}
}

// TestWriteFailure: a failed write fails Write and every later record.
func TestWriteFailure(t *testing.T) {
	l, m := newTestLogAt(t, Options{Mode: SyncInterval, Interval: time.Hour}, 0)
	defer l.Close()
	appendRecord(t, l, 1)
	m.FailAfter(0)
	if err := l.Write(1); !errors.Is(err, ErrFailed) {
		t.Fatalf("Write with a failing disk: %v", err)
	}
	if !l.Failed() {
		t.Fatal("Failed() is false after a failed write")
	}
	if _, _, err := l.BeginRecord(); !errors.Is(err, ErrFailed) {
		t.Fatalf("BeginRecord after a failed write: %v", err)
	}
	if ok, err := l.WrittenOrErr(1); ok || !errors.Is(err, ErrFailed) {
		t.Fatalf("WrittenOrErr(1) = %v, %v", ok, err)
	}
}
