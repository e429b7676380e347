package wal

import (
	"errors"
	"testing"
	"time"
)

// TestReserveKeepsZerosAhead: with Options.Reserve, the writer keeps
// zeros written and synced ahead of the records, records overwrite them
// (the file does not grow with each record), and after a crash the
// segment reads back every synced record and ends cleanly at the zeros;
// a log reopened there goes on writing over them.
func TestReserveKeepsZerosAhead(t *testing.T) {
	const reserve = 16 << 10
	l, m := newTestLogAt(t, Options{Mode: SyncEach, Reserve: reserve}, 0)
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	name := "/d/" + SegmentName(1)
	for end := time.Now().Add(10 * time.Second); m.Size(name) < FileHeaderSize+reserve; {
		if time.Now().After(end) {
			t.Fatalf("segment of %d bytes: nothing reserved", m.Size(name))
		}
		time.Sleep(time.Millisecond)
	}
	first := m.Size(name)
	appendRecord(t, l, 1)
	if err := l.WaitDurable(1); err != nil {
		t.Fatal(err)
	}
	if got := m.Size(name); got != first {
		t.Fatalf("a record over the reserved zeros grew the file from %d to %d bytes", first, got)
	}
	// Records past half the reservation make the writer reserve more.
	ts := uint64(1)
	for l.Size() < reserve {
		ts++
		appendRecord(t, l, ts)
		if err := l.WaitDurable(ts); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(10 * time.Second); m.Size(name) < l.Size()+reserve/2; {
		if time.Now().After(end) {
			t.Fatalf("records end at %d, the file at %d: the reservation was not topped up", l.Size(), m.Size(name))
		}
		time.Sleep(time.Millisecond)
	}
	logical := l.Size()
	m.Crash()
	if got := syncedCommits(t, m); uint64(len(got)) != ts {
		t.Fatalf("after a crash the segment holds %d commits, want %d", len(got), ts)
	}
	l.Close()

	// Reopened at the end of its records, the log writes over the zeros.
	f, err := m.OpenWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	l2 := NewLog(Options{FS: m, Dir: "/d", Mode: SyncEach, Reserve: reserve}, f, logical, 1, ts)
	for range 3 {
		ts++
		appendRecord(t, l2, ts)
	}
	if err := l2.WaitDurable(ts); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	got := syncedCommits(t, m)
	if uint64(len(got)) != ts || got[len(got)-1] != ts {
		t.Fatalf("after reopening and a crash the segment holds commits %v..., %d of them; want %d", got[:min(len(got), 3)], len(got), ts)
	}
	l2.Close()
}

// TestReserveSyncFailureFailsTheLog: a failed sync of the reserved zeros
// fails the log like any failed sync of the segment (it may have dropped
// records' dirty pages with them): no record is taken afterwards.
func TestReserveSyncFailureFailsTheLog(t *testing.T) {
	m := NewStrictMem()
	m.FailSyncs(true) // the writer's first act is to reserve and sync
	l := startTestLog(t, m, Options{Mode: SyncEach, Reserve: 16 << 10}, 0)
	defer l.Close()
	for end := time.Now().Add(10 * time.Second); !l.Failed(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the reservation's sync failed and the log did not")
		}
	}
	if _, _, err := l.BeginRecord(); !errors.Is(err, ErrFailed) {
		t.Fatalf("BeginRecord after the failed sync: %v, want ErrFailed", err)
	}
}
