package kvstore

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// fillForCompaction writes a history with puts, overwrites, deletes and a
// transaction, compacting once in the middle, and returns the state.
func fillForCompaction(t *testing.T, s *Store) map[string]string {
	t.Helper()
	want := map[string]string{}
	put := func(k, v string) {
		if err := s.Put(k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	for i := range 300 {
		put(fmt.Sprint("k", i%120), fmt.Sprint("v", i))
	}
	for i := range 20 {
		k := fmt.Sprint("k", i*3)
		if _, err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
		delete(want, k)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		put(fmt.Sprint("n", i%70), fmt.Sprint("w", i))
	}
	err := s.Update(func(tx *Txn) error {
		tx.Put("t", "x")
		_, err := tx.Delete("k1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want["t"] = "x"
	delete(want, "k1")
	return want
}

// TestCompactionCrashAtEveryStep crashes a compaction at each of its file
// operations in turn (that one and every later one fail, then what was
// not synced is lost) and checks that the directory recovers the state.
func TestCompactionCrashAtEveryStep(t *testing.T) {
	for n := 0; ; n++ {
		if n > 500 {
			t.Fatal("compaction never completed")
		}
		fs := newMemFS()
		s := openMem(t, fs, WithSync(SyncAlways), WithAutoCompact(-1))
		want := fillForCompaction(t, s)
		fs.FailAfter(n)
		cerr := s.Compact()
		s.Close()
		fs.Crash()
		s2, err := Open(memDir, withFS(fs))
		if err != nil {
			t.Fatalf("crash at step %d of compaction (compact: %v): Open: %v", n, cerr, err)
		}
		mustEqual(t, contents(s2), want)
		// The recovered store takes writes and keeps them.
		if err := s2.Put("after", "crash"); err != nil {
			t.Fatal(err)
		}
		s2.Close()
		s3 := openMem(t, fs)
		want["after"] = "crash"
		mustEqual(t, contents(s3), want)
		s3.Close()
		if cerr == nil {
			t.Logf("compaction has %d failure points", n)
			return
		}
	}
}

// TestCompactionRemovesCoveredLog: after compaction only the snapshot and
// the segment after it remain, and recovery reads them.
func TestCompactionRemovesCoveredLog(t *testing.T) {
	fs := newMemFS()
	s := openMem(t, fs, WithAutoCompact(-1))
	want := fillForCompaction(t, s)
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	names, _ := fs.List(memDir)
	d := wal.ParseDir(names)
	if len(d.Snapshots) != 1 || len(d.Segments) != 1 || len(d.Temp) != 0 {
		t.Errorf("after compaction: %v", names)
	}
	s.Close()
	s = openMem(t, fs)
	mustEqual(t, contents(s), want)
	s.Close()
}

// TestCompactionWhileWriting compacts repeatedly while writers run: the
// recovered state is the state at Close.
func TestCompactionWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, WithSync(SyncNever), WithAutoCompact(4<<10))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				k := fmt.Sprintf("w%d-%d", w, i%150)
				var err error
				switch i % 5 {
				case 0:
					_, err = s.Delete(k)
				case 1:
					err = s.Update(func(tx *Txn) error {
						tx.Put(k, fmt.Sprint(i))
						return tx.Put(k+"b", fmt.Sprint(i))
					})
				default:
					err = s.Put(k, fmt.Sprint(i))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 5 {
		if err := s.Compact(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	want := contents(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustEqual(t, contents(s), want)
}
