//go:build linux

package kvstore

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/internal/uring"
)

// needIOUring skips a test of the io_uring batches on a kernel that
// refuses io_uring (the loops then make plain calls, which the "plain"
// backend of every server test covers).
func needIOUring(t *testing.T) {
	t.Helper()
	r, err := uring.New(4)
	if errors.Is(err, uring.ErrUnsupported) {
		t.Skip("this kernel refuses io_uring")
	}
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

// expectLine reads one response line and checks it; it reports rather
// than fails, for client goroutines.
func (c *testClient) expectLine(want string) error {
	line, err := c.br.ReadString('\n')
	if err != nil || line != want+"\n" {
		return fmt.Errorf("got %.60q, %v; want %.60q", line, err, want)
	}
	return nil
}

// putGet sends a PUT of key and a GET of it in one write and checks both
// answers.
func (c *testClient) putGet(key, val string) error {
	c.send("PUT " + key + " " + val + "\nGET " + key + "\n")
	if err := c.expectLine(respOK); err != nil {
		return err
	}
	return c.expectLine(respResult(val))
}

// putGetClients runs clients clients at once, each making rounds putGet
// calls on a key of its own and pausing for pause after each, and fails
// t for every wrong answer.
func (ts *testServer) putGetClients(t *testing.T, clients, rounds int, pause time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		c := ts.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := c.putGet(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d.%d", i, r)); err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", i, r, err)
					return
				}
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// batchStats sums the loops' batch counters.
func (ts *testServer) batchStats() (sendBatches, sendOps, readBatches, readOps int64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, l := range ts.loops {
		if b := l.batch; b != nil {
			sendBatches += b.sendBatches.Load()
			sendOps += b.sendOps.Load()
			readBatches += b.readBatches.Load()
			readOps += b.readOps.Load()
		}
	}
	return
}

// TestEventLoopBatchesReadsAndWrites: with many clients at once, one loop
// reads from several connections, and writes to several, per
// io_uring_enter, and every client gets its own answers.
func TestEventLoopBatchesReadsAndWrites(t *testing.T) {
	needIOUring(t)
	ts := startServer(t, WithEventLoops(1))
	ts.putGetClients(t, 40, 150, 0)
	sb, so, rb, ro := ts.batchStats()
	t.Logf("%d sends in %d io_uring_enter calls, %d receives in %d", so, sb, ro, rb)
	if sb == 0 || so < 2*sb || rb == 0 || ro < 2*rb {
		t.Errorf("%d sends in %d batches, %d receives in %d: not batched", so, sb, ro, rb)
	}
}

// TestEventLoopBatchedSendsOnFullSockets: clients that pipeline more
// responses than their sockets hold, and read them late, share a loop's
// batches with each other and with a fast client; every socket that takes
// part of a send keeps the rest for later, and each client receives all
// its responses, whole and in order.
func TestEventLoopBatchedSendsOnFullSockets(t *testing.T) {
	needIOUring(t)
	ts := startServer(t, WithEventLoops(1))
	// Responses of 48 KiB (for half the clients) fit in the loop's arena,
	// where a round's responses wait for their batch; responses of 512 KiB
	// (for the other half) do not, and wait in buffers of their own.
	big := strings.Repeat("0123456789abcdef", 3<<10)
	huge := strings.Repeat("fedcba9876543210", 32<<10)
	ts.store.Put("big", big)
	ts.store.Put("huge", huge)
	const slow, pairs = 6, 30 // 117 MiB of responses each
	for i := range slow {
		ts.store.Put(fmt.Sprintf("c%d", i), fmt.Sprintf("client %d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, slow+1)
	start := make(chan struct{})
	for i := range slow {
		c := ts.dial(t)
		c.c.SetDeadline(time.Now().Add(time.Minute)) // slow under -race
		key, val, pairs := "big", big, 150           // 7 MiB of responses
		if i%2 == 1 {
			key, val, pairs = "huge", huge, 20 // 10 MiB
		}
		c.send(strings.Repeat(fmt.Sprintf("GET %s\nGET c%d\n", key, i), pairs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			wantBig, wantOwn := respResult(val)+"\n", respResult(fmt.Sprintf("client %d", i))+"\n"
			for p := range pairs {
				for _, want := range []string{wantBig, wantOwn} {
					line, err := c.br.ReadString('\n')
					if err != nil || line != want {
						errs <- fmt.Errorf("client %d, pair %d: %d bytes (%.40q), %v; want %.40q", i, p, len(line), line, err, want)
						return
					}
				}
				// Read slowly, so that the sockets stay full and
				// the loop sends from its connections' own buffers
				// too, not only from its arena.
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	fast := ts.dial(t)
	for range 50 {
		if got := fast.do("PING")[0]; got != `{"status":"Ok","result":"PONG"}` {
			t.Fatalf("fast client: %s", got)
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if sb, so, _, _ := ts.batchStats(); so < 2*sb {
		t.Errorf("%d sends in %d batches: the slow clients' sends were not batched", so, sb)
	}
}

// uringFDs lists the process's io_uring descriptors.
func uringFDs(t *testing.T) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]bool{}
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(target, "io_uring") {
			fd, _ := strconv.Atoi(e.Name())
			fds[fd] = true
		}
	}
	return fds
}

// TestEventLoopIOUringFailure: when the kernel fails a batch, the loop
// closes the connections of that batch (what their sends or receives did
// is unknown), never answers anything garbled, and goes on serving with
// plain reads and writes.
func TestEventLoopIOUringFailure(t *testing.T) {
	needIOUring(t)
	before := uringFDs(t)
	ts := startServer(t, WithEventLoops(1))
	const clients = 10
	cs := make([]*testClient, clients)
	for i := range cs {
		cs[i] = ts.dial(t)
		if got := cs[i].do("PING")[0]; got != `{"status":"Ok","result":"PONG"}` {
			t.Fatalf("client %d: %s", i, got)
		}
	}
	var ring []int
	for fd := range uringFDs(t) {
		if !before[fd] {
			ring = append(ring, fd)
		}
	}
	if len(ring) != 1 {
		t.Fatalf("io_uring descriptors of the loop: %v", ring)
	}
	// Break the ring under the loop: its descriptor becomes /dev/null,
	// where io_uring_enter fails.
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if err := syscall.Dup3(int(null.Fd()), ring[0], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	ts.mu.Lock()
	l := ts.loops[0]
	ts.mu.Unlock()
	// Requests from all clients at once, until a batch has failed.
	closed := 0
	for round := 0; !l.batchOff.Load(); round++ {
		if round == 1000 {
			t.Fatal("no batch failed after 1000 rounds of requests")
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, c := range cs {
			if c == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.c.Write([]byte("PING\n"))
				line, err := c.br.ReadString('\n')
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && line == `{"status":"Ok","result":"PONG"}`+"\n":
				case err != nil && line == "": // closed with its batch
					cs[i] = nil
					closed++
				default:
					t.Errorf("client %d: %q, %v", i, line, err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	t.Logf("%d of %d clients closed with the failed batch", closed, clients)
	// The loop serves on, with plain calls: the clients left, and new ones.
	for range 3 {
		cs = append(cs, ts.dial(t))
	}
	for i, c := range cs {
		if c == nil {
			continue
		}
		key := fmt.Sprintf("k%d", i)
		if got := c.do("PUT "+key+" v", "GET "+key); got[0] != respOK || got[1] != respResult("v") {
			t.Errorf("client %d after the failure: %q", i, got)
		}
	}
}

// TestEventLoopBatchedReadsWithHeldLines: a connection with lines left
// over from its turn (held) that also has new input reads it in its turn,
// outside the round's batch of reads; the other connections' input, read
// by the batch and not executed yet, must survive that read. Pipelining
// clients make the held lines, request/response clients check that every
// answer is their own.
func TestEventLoopBatchedReadsWithHeldLines(t *testing.T) {
	needIOUring(t)
	ts := startServer(t, WithEventLoops(1))
	const pipeliners, talkers, rounds = 4, 20, 150
	var wg sync.WaitGroup
	errs := make(chan error, pipeliners+talkers)
	stop := make(chan struct{})
	for i := range pipeliners {
		c := ts.dial(t)
		c.c.SetDeadline(time.Now().Add(time.Minute))
		wg.Add(1)
		go func() {
			defer wg.Done()
			// More than a turn's 1,024 requests at once, sent in two
			// writes: the second arrives while the first is held.
			burst := strings.Repeat(fmt.Sprintf("PUT p%d x\n", i), 1500)
			for {
				select {
				case <-stop:
					return
				default:
				}
				go func() { c.c.Write([]byte(burst)); c.c.Write([]byte(burst)) }()
				for n := range 3000 {
					if err := c.expectLine(respOK); err != nil {
						errs <- fmt.Errorf("pipeliner %d, response %d: %w", i, n, err)
						return
					}
				}
			}
		}()
	}
	var talk sync.WaitGroup
	for i := range talkers {
		c := ts.dial(t)
		c.c.SetDeadline(time.Now().Add(time.Minute))
		talk.Add(1)
		go func() {
			defer talk.Done()
			for r := range rounds {
				if err := c.putGet(fmt.Sprintf("t%d", i), fmt.Sprintf("v%d.%d", i, r)); err != nil {
					errs <- fmt.Errorf("talker %d round %d: %w", i, r, err)
					return
				}
			}
		}()
	}
	talk.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
