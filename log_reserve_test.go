package kvstore

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// TestLogReservesSpaceOnDisk: on the operating system's files, the log
// keeps zeros written ahead of its records (wal.Options.Reserve), and a
// store reopened on such a segment, twice, recovers every commit and
// writes its next ones over the zeros, without taking them for a torn
// tail (no warning).
func TestLogReservesSpaceOnDisk(t *testing.T) {
	dir := t.TempDir()
	put := func(s *Store, from, to int) {
		for i := from; i < to; i++ {
			if err := s.Put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(s *Store, n int) {
		for i := range n {
			if v, ok := s.Get(fmt.Sprintf("k%d", i)); !ok || v != fmt.Sprintf("v%d", i) {
				t.Fatalf("k%d = %q, %v after reopening", i, v, ok)
			}
		}
	}
	segment := func() string {
		names, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range names {
			if filepath.Ext(e.Name()) == ".wal" {
				return filepath.Join(dir, e.Name())
			}
		}
		t.Fatal("no log segment")
		return ""
	}
	s, err := Open(dir, WithSync(SyncAlways), WithAutoCompact(-1))
	if err != nil {
		t.Fatal(err)
	}
	put(s, 0, 500)
	records := segmentRecordBytes(t, wal.OS{}, segment())
	var onDisk int64
	for end := time.Now().Add(10 * time.Second); onDisk < records+logReserve/2; time.Sleep(time.Millisecond) {
		fi, err := os.Stat(segment())
		if err != nil {
			t.Fatal(err)
		}
		if onDisk = fi.Size(); time.Now().After(end) {
			t.Fatalf("segment of %d bytes for %d bytes of records: nothing reserved", onDisk, records)
		}
	}
	for round := 1; round <= 2; round++ {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if s, err = Open(dir, WithSync(SyncAlways), WithAutoCompact(-1), WithStoreLogger(logger)); err != nil {
			t.Fatalf("reopening over the reserved zeros (round %d): %v", round, err)
		}
		if logged.Len() > 0 {
			t.Fatalf("reopening over the reserved zeros (round %d) logged %s", round, logged.String())
		}
		check(s, round*500)
		put(s, round*500, (round+1)*500)
	}
	check(s, 1500)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := segmentRecordBytes(t, wal.OS{}, segment()); got <= records {
		t.Fatalf("records end at %d bytes after 1,500 commits, %d after 500", got, records)
	}
}
