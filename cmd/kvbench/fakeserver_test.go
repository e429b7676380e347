package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeKVD is a tiny kvd-protocol server on 127.0.0.1:0 that counts what
// it is asked. It is only as smart as kvbench's tests need.
type fakeKVD struct {
	ln          net.Listener
	conflictAll bool  // every COMMIT fails with a conflict
	closeAfter  int64 // close each connection after this many requests (0: never)

	mu    sync.Mutex
	data  map[string]string
	count map[string]int // requests by command

	accepted atomic.Int64
	wg       sync.WaitGroup
}

func startFake(t *testing.T, conflictAll bool, closeAfter int64) *fakeKVD {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeKVD{ln: ln, conflictAll: conflictAll, closeAfter: closeAfter,
		data: map[string]string{}, count: map[string]int{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeKVD) addr() string { return f.ln.Addr().String() }

func (f *fakeKVD) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		f.wg.Add(1)
		go f.serve(c)
	}
}

func (f *fakeKVD) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	var n int64
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n++
		if f.closeAfter > 0 && n > f.closeAfter {
			return
		}
		fields := strings.SplitN(strings.TrimRight(line, "\r\n"), " ", 3)
		f.mu.Lock()
		f.count[fields[0]]++
		switch {
		case fields[0] == "GET" && len(fields) == 2:
			if v, ok := f.data[fields[1]]; ok {
				b, _ := json.Marshal(v)
				w.WriteString(`{"status":"Ok","result":` + string(b) + "}\n")
			} else {
				w.WriteString(`{"status":"Error","mesg":"key not found: ` + fields[1] + "\"}\n")
			}
		case fields[0] == "PUT" && len(fields) == 3:
			f.data[fields[1]] = fields[2]
			w.WriteString(`{"status":"Ok"}` + "\n")
		case fields[0] == "START":
			w.WriteString(`{"status":"Ok"}` + "\n")
		case fields[0] == "COMMIT" && f.conflictAll:
			w.WriteString(`{"status":"Error","mesg":"conflict: transaction aborted"}` + "\n")
		case fields[0] == "COMMIT":
			w.WriteString(`{"status":"Ok"}` + "\n")
		default:
			w.WriteString(`{"status":"Error","mesg":"bad request"}` + "\n")
		}
		f.mu.Unlock()
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

func (f *fakeKVD) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.count {
		out[k] = v
	}
	return out
}

// runKVBench runs kvbench in-process and decodes its -json line.
func runKVBench(t *testing.T, args ...string) (summary, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append(args, "-json", "-q"), &out, &errb)
	var s summary
	if code != 2 {
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("output %q (stderr %q): %v", out.String(), errb.String(), err)
		}
	}
	return s, code
}

func TestAgainstFakeServer(t *testing.T) {
	f := startFake(t, false, 0)
	s, code := runKVBench(t, "-addr", f.addr(), "-c", "4", "-P", "8", "-n", "2000", "-keys", "100", "-vsize", "16", "-prefill", "-ratio", "9:1")
	if code != 0 {
		t.Fatalf("exit code %d, summary %+v", code, s)
	}
	if s.Ops != 2000 || s.Requests != 2000 || s.Errors != 0 || s.Misses != 0 || s.ConnErrors != 0 {
		t.Fatalf("summary %+v", s)
	}
	c := f.counts()
	if c["GET"]+c["PUT"] != 2100 || c["PUT"] < 100+100 || c["PUT"] > 100+300 {
		t.Errorf("server saw %v; want 100 prefill PUTs plus 2000 requests about 9:1", c)
	}
	if f.accepted.Load() != 4 {
		t.Errorf("server accepted %d connections, want 4", f.accepted.Load())
	}
	f.mu.Lock()
	for i := 0; i < 100; i++ {
		k := string(newKeyspace(100).key(i))
		if v := f.data[k]; v != string(makeValue(16)) {
			t.Errorf("prefill left %s = %q", k, v)
		}
	}
	f.mu.Unlock()
	l := s.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency percentiles not ordered: %+v", l)
	}
	if s.OpsPerSec <= 0 || s.Seconds <= 0 {
		t.Errorf("throughput %v over %v s", s.OpsPerSec, s.Seconds)
	}
}

func TestMissesAreCountedNotErrors(t *testing.T) {
	f := startFake(t, false, 0)
	s, code := runKVBench(t, "-addr", f.addr(), "-c", "2", "-n", "300", "-ratio", "1:0", "-keys", "50")
	if code != 0 || s.Misses != 300 || s.Errors != 0 {
		t.Fatalf("code %d, summary %+v; want 300 misses and no errors", code, s)
	}
}

func TestTransactionsAndConflicts(t *testing.T) {
	f := startFake(t, true, 0)
	s, code := runKVBench(t, "-addr", f.addr(), "-c", "3", "-P", "4", "-n", "100", "-txn", "1", "-txn-keys", "2", "-keys", "10", "-prefill")
	if code != 0 {
		t.Fatalf("exit code %d, summary %+v", code, s)
	}
	if s.Txns != 100 || s.Conflicts != 100 || s.Ops != 100 || s.Requests != 600 || s.Errors != 0 {
		t.Fatalf("summary %+v; want 100 transactions of 6 requests, all conflicts", s)
	}
	c := f.counts()
	if c["START"] != 100 || c["COMMIT"] != 100 || c["GET"] != 200 || c["PUT"] != 10+200 {
		t.Errorf("server saw %v", c)
	}
	if s.TxnLatency == nil || s.TxnLatency.P50 <= 0 {
		t.Errorf("no transaction latency: %+v", s.TxnLatency)
	}
}

func TestBrokenConnectionIsReported(t *testing.T) {
	f := startFake(t, false, 10)
	s, code := runKVBench(t, "-addr", f.addr(), "-c", "2", "-n", "1000")
	if code != 1 || s.ConnErrors != 2 || s.FirstError == "" {
		t.Fatalf("code %d, summary %+v; want both connections reported broken", code, s)
	}
	if s.Ops != 20 {
		t.Errorf("ops %d, want the 20 answered before the server hung up", s.Ops)
	}
}

func TestIdleConnections(t *testing.T) {
	f := startFake(t, false, 0)
	s, code := runKVBench(t, "-addr", f.addr(), "-idle", "25", "-d", "20ms")
	if code != 0 || s.IdleOpen != 25 || s.IdleRefused != 0 {
		t.Fatalf("code %d, summary %+v", code, s)
	}
	if got := f.accepted.Load(); got != 25 {
		t.Errorf("server accepted %d connections, want 25", got)
	}
	if f.counts()["GET"] != 25 {
		t.Errorf("server saw %v, want one GET per connection", f.counts())
	}
}

func TestLoadOnly(t *testing.T) {
	f := startFake(t, false, 0)
	s, code := runKVBench(t, "-addr", f.addr(), "-c", "3", "-keys", "1000", "-prefill", "-load-only")
	if code != 0 || s.Ops != 0 || s.PrefillSec <= 0 {
		t.Fatalf("code %d, summary %+v", code, s)
	}
	if c := f.counts(); c["PUT"] != 1000 || len(c) != 1 {
		t.Errorf("server saw %v, want exactly 1000 PUTs", c)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-c", "0"}, {"-P", "0"}, {"-ratio", "x"}, {"-proto", "http"}, {"-txn", "2"},
		{"-load-only"}, {"-n", "-1"}, {"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit code %d, want 2", args, code)
		}
	}
}

func TestConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, errb bytes.Buffer
	if code := run([]string{"-addr", addr, "-n", "10", "-q"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "connect") {
		t.Fatalf("exit code %d, stderr %q", code, errb.String())
	}
}

// TestRatePacesTheLoad: with -rate, the workers send on a schedule: 400
// operations at 2,000 per second over 4 connections take at least about
// 0.2 s (a closed loop against the fake server takes milliseconds).
func TestRatePacesTheLoad(t *testing.T) {
	f := startFake(t, false, 0)
	t0 := time.Now()
	s, code := runKVBench(t, "-addr", f.addr(), "-c", "4", "-n", "400", "-rate", "2000", "-keys", "100")
	elapsed := time.Since(t0)
	if code != 0 || s.Ops != 400 || s.Errors != 0 {
		t.Fatalf("exit code %d, summary %+v", code, s)
	}
	// Each connection sends 100 batches 2 ms apart: the last one 198 ms
	// after its first, which is at most one interval after the start.
	if elapsed < 190*time.Millisecond {
		t.Errorf("400 operations at 2,000/s took %v: not paced", elapsed)
	}
	if _, code := runKVBench(t, "-addr", f.addr(), "-n", "1", "-rate", "-1"); code != 2 {
		t.Errorf("-rate -1: exit code %d, want 2", code)
	}
}
