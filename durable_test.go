package kvstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/internal/wal"
)

const memDir = "/data"

func newMemFS() *wal.StrictMem {
	fs := wal.NewStrictMem()
	fs.MkdirAll(memDir)
	return fs
}

func openMem(t testing.TB, fs wal.FS, opts ...StoreOption) *Store {
	t.Helper()
	s, err := Open(memDir, append([]StoreOption{withFS(fs)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// contents returns every key and value of s.
func contents(s *Store) map[string]string {
	m := map[string]string{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for j := range sh.t.slots {
			if sh.t.slots[j].rec != nil && sh.t.ts(j)&tombstoneBit == 0 {
				m[sh.t.key(j)] = sh.t.value(j)
			}
		}
		sh.mu.RUnlock()
	}
	return m
}

func mustEqual(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("store has %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("key %q = %q (present %v), want %q", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected key %q", k)
		}
	}
}

func TestOpenRecoversCommits(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncEverySecond, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, WithSync(mode))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for i := range 100 {
				k := fmt.Sprintf("k%d", i)
				if err := s.Put(k, strings.Repeat("v", i)); err != nil {
					t.Fatal(err)
				}
				want[k] = strings.Repeat("v", i)
			}
			if _, err := s.Delete("k3"); err != nil {
				t.Fatal(err)
			}
			delete(want, "k3")
			err = s.Update(func(tx *Txn) error {
				tx.Put("t1", "a")
				tx.Put("k4", "b")
				_, err := tx.Delete("k5")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			want["t1"], want["k4"] = "a", "b"
			delete(want, "k5")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Put("after", "close"); !errors.Is(err, ErrClosed) {
				t.Errorf("Put after Close: %v, want ErrClosed", err)
			}
			s2, err := Open(dir, WithSync(mode))
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			mustEqual(t, contents(s2), want)
			if s2.Len() != len(want) {
				t.Errorf("Len %d, want %d", s2.Len(), len(want))
			}
			// Commit timestamps continue where they were.
			if err := s2.Put("k0", "new"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenDirErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing dir: %v, want an error wrapping ErrNotExist", err)
	}
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open of one dir: %v, want an 'in use' error", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
}

// segmentPath returns the path of the only log segment in dir.
func segmentPath(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "log-*.wal"))
	if len(m) != 1 {
		t.Fatalf("segments %v, want one", m)
	}
	return m[0]
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, WithSync(SyncAlways))
	s.Put("a", "1")
	s.Put("b", "2")
	s.Close()
	seg := segmentPath(t, dir)
	data, _ := os.ReadFile(seg)
	whole := len(data)
	// A partial record, as a crash in the middle of a write leaves.
	rec := wal.AppendFrame(nil, wal.AppendPut(wal.AppendCommitHeader(nil, 3, 1), "c", "3", 0))
	os.WriteFile(seg, append(data, rec[:len(rec)-2]...), 0o644)
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open with a torn tail: %v", err)
	}
	mustEqual(t, contents(s), map[string]string{"a": "1", "b": "2"})
	s.Put("c", "new")
	s.Close()
	if fi, _ := os.Stat(seg); fi.Size() <= int64(whole) {
		t.Errorf("segment is %d bytes after a new put, want more than %d", fi.Size(), whole)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, contents(s), map[string]string{"a": "1", "b": "2", "c": "new"})
	s.Close()
}

func TestDamageStopsOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, WithSync(SyncAlways))
	for i := range 10 {
		s.Put(fmt.Sprint("k", i), "v")
	}
	s.Close()
	seg := segmentPath(t, dir)
	data, _ := os.ReadFile(seg)
	// Damage the third record's payload: valid records follow.
	off := wal.FileHeaderSize
	for range 2 {
		off += wal.FrameHeaderSize + int(data[off]) // records are short here
	}
	data[off+wal.FrameHeaderSize+2] ^= 0xff
	os.WriteFile(seg, data, 0o644)
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(seg)) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", off)) {
		t.Fatalf("Open of a damaged log: %v, want an error naming %s and offset %d", err, seg, off)
	}
	s, err = Open(dir, WithRecoverTruncate(true))
	if err != nil {
		t.Fatalf("Open with WithRecoverTruncate: %v", err)
	}
	mustEqual(t, contents(s), map[string]string{"k0": "v", "k1": "v"})
	s.Close()
}

// TestFailedSyncStopsAcknowledging: after a failed fsync, no write is
// acknowledged again (the fsync-gate rule).
func TestFailedSyncStopsAcknowledging(t *testing.T) {
	fs := newMemFS()
	s := openMem(t, fs, WithSync(SyncAlways))
	if err := s.Put("a", "1"); err != nil {
		t.Fatal(err)
	}
	fs.FailSyncs(true)
	if err := s.Put("b", "2"); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Put with a failing fsync: %v, want ErrLogFailed", err)
	}
	fs.FailSyncs(false)
	if err := s.Put("c", "3"); !errors.Is(err, ErrLogFailed) {
		t.Errorf("Put after a failed fsync: %v, want ErrLogFailed", err)
	}
	if err := s.Update(func(tx *Txn) error { return tx.Put("d", "4") }); !errors.Is(err, ErrLogFailed) {
		t.Errorf("Commit after a failed fsync: %v, want ErrLogFailed", err)
	}
	if _, ok := s.Get("c"); ok {
		t.Error("a refused Put was applied")
	}
	if err := s.Close(); !errors.Is(err, ErrLogFailed) {
		t.Errorf("Close: %v, want ErrLogFailed", err)
	}
	fs.Crash()
	s = openMem(t, fs)
	defer s.Close()
	if v, ok := s.Get("a"); !ok || v != "1" {
		t.Errorf("a = %q, %v after recovery", v, ok)
	}
}

// ackLog records the writes a test's clients saw acknowledged.
type ackLog struct {
	mu    sync.Mutex
	acked map[string]string // key -> last acknowledged value ("" deleted)
	tried map[string]bool   // key=value pairs ever attempted
	// failed holds, for each key the failing write of a writer touched,
	// the state that write would leave ("" deleted). A write that
	// returned an error is indeterminate: it may be on disk (the error
	// came from a later sync of the same batch, or from a sync whose
	// pages reached the disk anyway), so recovery may hold either state.
	failed map[string]string
}

func newAckLog() *ackLog {
	return &ackLog{acked: map[string]string{}, tried: map[string]bool{}, failed: map[string]string{}}
}

// crashLoad runs writers (puts, deletes, transactions) on s until stop,
// and records what was acknowledged. Each writer owns its keys.
func crashLoad(s *Store, writers int, stop <-chan struct{}, acks *ackLog) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d-%d", w, r.IntN(20))
				v := fmt.Sprintf("%d-%d", w, i)
				acks.mu.Lock()
				acks.tried[k+"="+v] = true
				acks.mu.Unlock()
				var err error
				del, k2 := false, ""

				switch r.IntN(4) {
				case 0:
					del = true
					_, err = s.Delete(k)
				case 1:
					k2 = fmt.Sprintf("w%d-%d", w, r.IntN(20))
					acks.mu.Lock()
					acks.tried[k2+"="+v] = true
					acks.mu.Unlock()
					err = s.Update(func(tx *Txn) error {
						tx.Put(k, v)
						return tx.Put(k2, v)
					})
					if err == nil {
						acks.mu.Lock()
						acks.acked[k2] = v
						acks.mu.Unlock()
					}
				default:
					err = s.Put(k, v)
				}
				if err != nil {
					if errors.Is(err, ErrLogFailed) || errors.Is(err, ErrClosed) {
						// Each writer stops at its first error, so only
						// this write of its keys is indeterminate.
						acks.mu.Lock()
						if del {
							acks.failed[k] = ""
						} else {
							acks.failed[k] = v
							if k2 != "" {
								acks.failed[k2] = v
							}
						}
						acks.mu.Unlock()
						return
					}
					panic(err)
				}
				acks.mu.Lock()
				if del {
					acks.acked[k] = ""
				} else {
					acks.acked[k] = v
				}
				acks.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// checkAcked verifies that recovered holds every acknowledged write, and
// only values that were written. Each key's writer is sequential and stops
// at its first error, so a key must hold its last acknowledged state, or
// the state of the writer's failed (indeterminate) write.
func checkAcked(t *testing.T, recovered map[string]string, acks *ackLog) (missing int) {
	t.Helper()
	for k, v := range recovered {
		if !acks.tried[k+"="+v] {
			t.Errorf("recovered %s=%s, never written", k, v)
		}
	}
	for k, v := range acks.acked {
		got, ok := recovered[k]
		if ok && got == v || !ok && v == "" {
			continue
		}
		if f, indeterminate := acks.failed[k]; indeterminate && (ok && got == f || !ok && f == "") {
			continue
		}
		t.Logf("%s: acknowledged %q, recovered %q (present %v)", k, v, got, ok)
		missing++
	}
	return missing
}

// TestCrashKeepsAcknowledgedWrites crashes a SyncAlways store at random
// points (every file operation from the n-th on fails, then the unsynced
// data is dropped) and checks that recovery keeps every acknowledged
// write and invents none.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	total := 0
	defer func() {
		if total == 0 {
			t.Error("no write was acknowledged in any round: the test checked nothing")
		}
	}()
	for round := range 20 {
		fs := newMemFS()
		s := openMem(t, fs, WithSync(SyncAlways), WithAutoCompact(2<<10))
		acks := newAckLog()
		stop := make(chan struct{})
		fs.FailAfter(20 + rand.IntN(400))
		go func() { time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond); close(stop) }()
		crashLoad(s, 4, stop, acks)
		total += len(acks.acked)
		s.Close()
		fs.Crash()
		s = openMem(t, fs)
		if m := checkAcked(t, contents(s), acks); m > 0 {
			t.Errorf("round %d: %d acknowledged writes lost", round, m)
		}
		s.Close()
	}
}

// TestCrashCheckCatchesEarlyAck shows the crash check failing on a broken
// store that acknowledges writes before they are synced.
func TestCrashCheckCatchesEarlyAck(t *testing.T) {
	fs := newMemFS()
	// No reservation: its first sync, racing with FailSyncs below, would
	// fail the log before any write is acknowledged.
	s := openMem(t, fs, WithSync(SyncAlways), withLogReserve(0))
	s.dur.ackEarly = true // the deliberate bug
	fs.FailSyncs(true)    // nothing reaches the disk from now on
	acks := newAckLog()
	stop := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); close(stop) }()
	crashLoad(s, 2, stop, acks)
	s.Close()
	fs.Crash()
	s = openMem(t, fs)
	defer s.Close()
	missing := 0
	for k, v := range acks.acked {
		if got, ok := contents(s)[k]; v != "" && (!ok || got != v) {
			missing++
		}
	}
	if missing == 0 {
		t.Fatal("the check found no lost write in a store that acknowledges before syncing")
	}
}

// TestEverySecondLosesAtMostItsBound: under SyncEverySecond, a crash
// loses only writes acknowledged in the last two seconds.
func TestEverySecondLosesAtMostItsBound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	fs := newMemFS()
	s := openMem(t, fs, WithSync(SyncEverySecond))
	type ack struct {
		key, val string
		at       time.Time
	}
	var acked []ack
	end := time.Now().Add(3500 * time.Millisecond)
	for i := 0; time.Now().Before(end); i++ {
		k, v := fmt.Sprint("k", i%500), fmt.Sprint(i)
		if err := s.Put(k, v); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, ack{k, v, time.Now()})
		time.Sleep(100 * time.Microsecond)
	}
	crashAt := time.Now()
	fs.Crash() // the machine goes down: unsynced bytes are lost
	s.Close()
	fs.Crash()
	s = openMem(t, fs)
	defer s.Close()
	got := contents(s)
	last := map[string]ack{}
	for _, a := range acked {
		if crashAt.Sub(a.at) > 2*time.Second {
			last[a.key] = a
		}
	}
	if len(last) == 0 {
		t.Fatal("no write old enough to check")
	}
	for k, a := range last {
		v, ok := got[k]
		var gi, ai int
		fmt.Sscan(v, &gi)
		fmt.Sscan(a.val, &ai)
		if !ok || gi < ai {
			t.Errorf("%s = %q (present %v): lost a write acknowledged %v before the crash", k, v, ok, crashAt.Sub(a.at))
		}
	}
}
