package wal

import (
	"errors"
	"io"
	"testing"
)

func readMem(t *testing.T, m *StrictMem, name string) (string, bool) {
	t.Helper()
	r, err := m.Open(name)
	if err != nil {
		return "", false
	}
	b, _ := io.ReadAll(r)
	return string(b), true
}

// TestStrictMemLosesUnsynced: Crash keeps synced bytes and synced
// directory entries only.
func TestStrictMemLosesUnsynced(t *testing.T) {
	m := NewStrictMem()
	m.MkdirAll("/d")
	f, _ := m.Create("/d/a")
	f.Write([]byte("synced"))
	f.Sync()
	m.SyncDir("/d")
	f.Write([]byte(" lost"))
	g, _ := m.Create("/d/b") // never in a synced directory
	g.Write([]byte("x"))
	g.Sync()
	m.Rename("/d/a", "/d/c") // not synced either
	m.Crash()
	if got, ok := readMem(t, m, "/d/a"); !ok || got != "synced" {
		t.Errorf("a = %q, %v; want the synced bytes", got, ok)
	}
	if _, ok := readMem(t, m, "/d/b"); ok {
		t.Error("b survived without a directory sync")
	}
	if _, ok := readMem(t, m, "/d/c"); ok {
		t.Error("the rename survived without a directory sync")
	}
}

func TestStrictMemFailures(t *testing.T) {
	m := NewStrictMem()
	m.MkdirAll("/d")
	f, _ := m.Create("/d/a")
	m.FailAfter(1)
	if _, err := f.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("fail")); !errors.Is(err, ErrInjected) {
		t.Errorf("second write: %v", err)
	}
	m.FailAfter(-1)
	m.FailSyncs(true)
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Errorf("sync: %v", err)
	}
	l, err := m.Lock("/d/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lock("/d/LOCK"); !errors.Is(err, ErrLocked) {
		t.Errorf("second lock: %v", err)
	}
	l.Close()
}
