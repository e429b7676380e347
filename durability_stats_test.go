package kvstore

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// statsConn is a client that sends requests and decodes STATS.
type statsConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialStats(t *testing.T, addr string) *statsConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return &statsConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (sc *statsConn) do(req string) string {
	sc.t.Helper()
	if _, err := sc.c.Write([]byte(req + "\n")); err != nil {
		sc.t.Fatal(err)
	}
	line, err := sc.br.ReadString('\n')
	if err != nil {
		sc.t.Fatalf("%s: %v", req, err)
	}
	return line
}

func (sc *statsConn) stats() map[string]float64 {
	sc.t.Helper()
	line := sc.do("STATS")
	var resp struct {
		Status string
		Result map[string]float64
	}
	if err := json.Unmarshal([]byte(line), &resp); err != nil || resp.Status != "Ok" {
		sc.t.Fatalf("STATS: %s (%v)", line, err)
	}
	return resp.Result
}

// segmentRecordBytes returns the size of the header and whole records of
// the log segment name in fs: its size on disk without the zeros the log
// reserves ahead of its records (see wal.Options.Reserve).
func segmentRecordBytes(t *testing.T, fs wal.FS, name string) int64 {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := wal.NewReader(f, wal.KindLog)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.Next(); err == io.EOF {
			return r.Offset()
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// diskSizes returns the total size of the records of the log segments in
// dir (segmentRecordBytes) and the size of its snapshot (0 if none; the
// test fails if there are several).
func diskSizes(t *testing.T, dir string) (logBytes, snapBytes int64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	snaps := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(e.Name(), "log-") && strings.HasSuffix(e.Name(), ".wal"):
			logBytes += segmentRecordBytes(t, wal.OS{}, filepath.Join(dir, e.Name()))
		case strings.HasPrefix(e.Name(), "snap-") && strings.HasSuffix(e.Name(), ".snap"):
			snapBytes = fi.Size()
			snaps++
		}
	}
	if snaps > 1 {
		t.Fatalf("%d snapshots in %s", snaps, dir)
	}
	return logBytes, snapBytes
}

// checkDurabilityStats checks STATS's durability figures against the
// files in dir and the want values (snapshot_unix within [from, to]; from
// 0 wants 0).
func checkDurabilityStats(t *testing.T, st map[string]float64, dir string, compactions float64, from, to int64) {
	t.Helper()
	logBytes, snapBytes := diskSizes(t, dir)
	want := map[string]float64{"log_bytes": float64(logBytes), "snapshot_bytes": float64(snapBytes), "compactions": compactions}
	for k, v := range want {
		if got, ok := st[k]; !ok || got != v {
			t.Errorf("STATS %s = %v (present %v), want %v; all: %v", k, got, ok, v, st)
		}
	}
	su, ok := st["snapshot_unix"]
	switch {
	case !ok:
		t.Errorf("STATS has no snapshot_unix: %v", st)
	case from == 0 && su != 0:
		t.Errorf("STATS snapshot_unix = %v with no snapshot", su)
	case from != 0 && (su < float64(from) || su > float64(to)):
		t.Errorf("STATS snapshot_unix = %v, want between %d and %d", su, from, to)
	}
}

// TestStatsDurability: over TCP, a store made by Open answers STATS with
// the log's and the snapshot's sizes (equal to the files in its
// directory), the snapshot's time and the count of compactions, through
// writes, a compaction, more writes and a restart; a store in memory
// leaves them out.
func TestStatsDurability(t *testing.T) {
	dir := t.TempDir()
	store, err := Open(dir, WithSync(SyncAlways), WithAutoCompact(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sc := dialStats(t, serveStore(t, store))

	st := sc.stats()
	checkDurabilityStats(t, st, dir, 0, 0, 0)
	if st["log_bytes"] != wal.FileHeaderSize {
		t.Errorf("log_bytes of a new store = %v, want the header's %d", st["log_bytes"], wal.FileHeaderSize)
	}
	empty := st["log_bytes"]

	// Under SyncAlways an acknowledged write is written: the log has grown.
	for i := range 100 {
		if r := sc.do(fmt.Sprintf("PUT key%03d %s", i, strings.Repeat("v", 64))); !strings.Contains(r, `"Ok"`) {
			t.Fatalf("PUT: %s", r)
		}
	}
	sc.do("DEL key000")
	st = sc.stats()
	checkDurabilityStats(t, st, dir, 0, 0, 0)
	if st["log_bytes"] < empty+100*64 {
		t.Errorf("log_bytes after 100 PUTs of 64 bytes = %v", st["log_bytes"])
	}
	full := st["log_bytes"]

	from := time.Now().Unix()
	if err := store.Compact(); err != nil {
		t.Fatal(err)
	}
	to := time.Now().Unix()
	st = sc.stats()
	checkDurabilityStats(t, st, dir, 1, from, to)
	if st["log_bytes"] != empty || st["snapshot_bytes"] < 99*64 {
		t.Errorf("after Compact: log_bytes %v (before %v), snapshot_bytes %v", st["log_bytes"], full, st["snapshot_bytes"])
	}
	snap := st["snapshot_bytes"]

	sc.do("PUT after 1")
	st = sc.stats()
	checkDurabilityStats(t, st, dir, 1, from, to)
	if st["log_bytes"] <= empty || st["snapshot_bytes"] != snap {
		t.Errorf("after a PUT past the snapshot: %v", st)
	}

	// A second compaction over the wire: counted, and the figures follow.
	if r := sc.do("COMPACT"); !strings.Contains(r, "compaction started") {
		t.Fatalf("COMPACT: %s", r)
	}
	waitFor(t, "COMPACT to end", func() bool { return store.DurabilityStats().Compactions == 2 })
	store.dur.compactions.Wait()
	checkDurabilityStats(t, sc.stats(), dir, 2, from, time.Now().Unix())

	// After a restart: the snapshot found on disk (its file's time), the
	// log after it, no compaction yet.
	sc.do("PUT later 2")
	sc.c.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store2, err := Open(dir, WithAutoCompact(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Close()
	fi, err := os.Stat(filepath.Join(dir, snapshotFile(t, dir)))
	if err != nil {
		t.Fatal(err)
	}
	sc2 := dialStats(t, serveStore(t, store2))
	st = sc2.stats()
	checkDurabilityStats(t, st, dir, 0, fi.ModTime().Unix(), fi.ModTime().Unix())
	if st["log_bytes"] <= empty {
		t.Errorf("log_bytes after a restart with a PUT past the snapshot: %v", st)
	}

	// In memory only: no durability figures at all.
	mem := dialStats(t, serveStore(t, New()))
	st = mem.stats()
	for _, k := range []string{"log_bytes", "snapshot_bytes", "snapshot_unix", "compactions"} {
		if _, ok := st[k]; ok {
			t.Errorf("STATS of a store in memory has %s: %v", k, st)
		}
	}
	if _, ok := st["keys"]; !ok {
		t.Errorf("STATS of a store in memory: %v", st)
	}
}

// TestStatsDurabilityOlderSegments: a log segment that a failed
// compaction left before the current one counts in log_bytes, and leaves
// it once a compaction succeeds; Open counts it too.
func TestStatsDurabilityOlderSegments(t *testing.T) {
	// Fail the n-th file operation of a compaction, for the first n that
	// fails it after the log has rotated, in the snapshot: the log keeps
	// working, and the old segment stays.
	var fs *wal.StrictMem
	var store *Store
	for n := 0; ; n++ {
		if n == 50 {
			t.Fatal("no failure point leaves two segments and a working log")
		}
		fs = newMemFS()
		store = openMem(t, fs, WithAutoCompact(-1))
		for i := range 50 {
			if err := store.Put(fmt.Sprintf("k%02d", i), strings.Repeat("x", 100)); err != nil {
				t.Fatal(err)
			}
		}
		fs.FailAfter(n)
		err := store.Compact()
		fs.FailAfter(-1)
		names, lerr := fs.List(memDir)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if err != nil && store.dur.log.Err() == nil && len(wal.ParseDir(names).Segments) == 2 {
			break
		}
		store.Close()
	}
	sizes := func() (total int64, segs int) {
		names, err := fs.List(memDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range wal.ParseDir(names).Segments {
			total += segmentRecordBytes(t, fs, wal.Join(memDir, wal.SegmentName(n)))
			segs++
		}
		return total, segs
	}
	total, _ := sizes()
	if got := store.DurabilityStats().LogBytes; got != total {
		t.Errorf("LogBytes = %d, want the %d bytes of both segments", got, total)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store = openMem(t, fs, WithAutoCompact(-1))
	defer store.Close()
	if total, _ = sizes(); store.DurabilityStats().LogBytes != total {
		t.Errorf("after Open: LogBytes = %d, want %d", store.DurabilityStats().LogBytes, total)
	}
	if err := store.Compact(); err != nil {
		t.Fatal(err)
	}
	if got := store.DurabilityStats().LogBytes; got != wal.FileHeaderSize {
		t.Errorf("after a compaction: LogBytes = %d, want %d", got, wal.FileHeaderSize)
	}
}

// snapshotFile returns the name of the one snapshot in dir.
func snapshotFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "snap-*.snap"))
	if err != nil || len(m) != 1 {
		t.Fatalf("snapshots in %s: %v %v", dir, m, err)
	}
	return filepath.Base(m[0])
}
