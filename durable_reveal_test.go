package kvstore

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// revealBackends are the backends of the reveal tests: one goroutine per
// connection, and a single event loop, so that every client shares the
// loop that a parked connection must not block.
var revealBackends = []struct {
	name  string
	loops int
}{
	{"goroutines", 0},
	{"one-loop", 1},
}

// TestServerSyncAlwaysReveals: under SyncAlways, with the disk holding
// every sync (StrictMem.HoldSyncs) after a writer's PUT and DEL were
// applied in memory,
//   - a client whose GETs show those fresh values (the new value, the
//     deleted key's absence) gets no answer until they are synced;
//   - a read-only client whose GETs show only synced values is answered
//     while the syncs are held, on the same event loop as the others.
//
// Both are checked by causality: answers are read while the syncs are
// held, and whatever arrives must be durable. The checker is run against
// the two deliberate bugs it must catch.
func TestServerSyncAlwaysReveals(t *testing.T) {
	for _, b := range revealBackends {
		t.Run(b.name, func(t *testing.T) {
			if err := checkReveals(t, b.loops, revealRight, 10*time.Second); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(b.name+"/GET shows unsynced", func(t *testing.T) {
			err := checkReveals(t, b.loops, revealNoneOfReads, 10*time.Second)
			if !errors.Is(err, errRevealedUnsynced) {
				t.Fatalf("a server whose GETs show unsynced commits: %v; want the checker to catch it", err)
			}
		})
		t.Run(b.name+"/reads wait for all", func(t *testing.T) {
			err := checkReveals(t, b.loops, revealAllPublished, 500*time.Millisecond)
			if !errors.Is(err, errDelayedReader) {
				t.Fatalf("a server whose reads wait for every commit: %v; want the checker to catch it", err)
			}
		})
	}
}

var (
	errRevealedUnsynced = errors.New("a response revealed a commit that is not synced")
	errDelayedReader    = errors.New("a reader of synced data waited for another client's sync")
)

// checkReveals runs the scenario of TestServerSyncAlwaysReveals on a
// server with loops event loops (0: goroutines) and the deliberate bug
// bug, and returns what went wrong. The read-only client is given
// readerWait to answer while syncs are held.
func checkReveals(t *testing.T, loops int, bug revealBug, readerWait time.Duration) error {
	t.Helper()
	fs := newMemFS()
	store := openMem(t, fs, WithSync(SyncAlways))
	defer store.Close()
	store.dur.revealBug = bug
	addr := serveStore(t, store, WithEventLoops(loops))
	defer fs.HoldSyncs(false) // before Close, which syncs

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(ioTimeout))
		return c, bufio.NewReader(c)
	}
	writer, wr := dial()
	reader, rr := dial()
	other, or := dial()

	// Synced before the syncs are held.
	writer.Write([]byte("PUT fresh old\nPUT gone x\nPUT stable s\n"))
	for range 3 {
		if line, err := wr.ReadString('\n'); err != nil || !strings.Contains(line, `"Ok"`) {
			t.Fatalf("setup: %q %v", line, err)
		}
	}

	fs.HoldSyncs(true)
	writer.Write([]byte("PUT fresh new\nDEL gone\n"))
	waitFor(t, "the writer's commits applied", func() bool {
		v, _ := store.Get("fresh")
		_, there := store.Get("gone")
		return v == "new" && !there
	})
	pending := store.oracle.committed.Load()
	if d := store.dur.log.Durable(); d >= pending {
		t.Fatalf("commit %d synced (durable %d) while syncs are held", pending, d)
	}

	// The read-only client shows only synced data: it is answered now.
	other.SetReadDeadline(time.Now().Add(readerWait))
	other.Write([]byte("GET stable\nPING\n"))
	for _, want := range []string{`"result":"s"`, `"result":"PONG"`} {
		line, err := or.ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("%w: no answer within %v while another client's commit %d waits for its sync", errDelayedReader, readerWait, pending)
		}
		if err != nil || !strings.Contains(line, want) {
			t.Fatalf("read-only client: %q %v, want %s", line, err, want)
		}
	}

	// The other reader shows the fresh commits: nothing may arrive while
	// they are not synced. A server with the bug answers at once; a
	// correct one stays silent however long this waits.
	reader.Write([]byte("GET fresh\nGET gone\n"))
	reader.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := rr.ReadString('\n'); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		if d := store.dur.log.Durable(); d < pending {
			return fmt.Errorf("%w: %q (%v) with commit %d published, %d synced", errRevealedUnsynced, line, err, pending, d)
		}
		t.Fatalf("answer %q (%v) while syncs are held, yet commit %d is synced", line, err, pending)
	}
	fs.HoldSyncs(false)
	reader.SetReadDeadline(time.Now().Add(ioTimeout))
	for _, want := range []string{`"result":"new"`, `key not found: gone`} {
		line, err := rr.ReadString('\n')
		if err != nil || !strings.Contains(line, want) {
			t.Fatalf("reader: %q %v, want %s", line, err, want)
		}
		if d := store.dur.log.Durable(); d < pending {
			return fmt.Errorf("%w: %q with commit %d published, %d synced", errRevealedUnsynced, line, pending, d)
		}
	}
	for range 2 {
		if line, err := wr.ReadString('\n'); err != nil || !strings.Contains(line, `"Ok"`) {
			t.Fatalf("writer: %q %v", line, err)
		}
	}
	return nil
}
