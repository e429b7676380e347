package kvstore

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestServerStatsErrorsBytesLatency(t *testing.T) {
	eachBackend(t, testServerStatsErrorsBytesLatency)
}

// testServerStatsErrorsBytesLatency sends requests that draw every kind
// of error a client can cause on a server with a password, a conflict, a
// pipelined batch and a half-close, and checks Server.Stats: errors by
// kind, bytes in and out to the byte, and one latency measurement per
// executed request.
func testServerStatsErrorsBytesLatency(t *testing.T, backend Option) {
	ts := startServer(t, backend, WithPassword("pw"), WithMaxLineBytes(64), WithMaxTxnDepth(2))
	var sent, received int
	do := func(c *testClient, reqs ...string) []string {
		t.Helper()
		out := c.do(reqs...)
		for i := range reqs {
			sent += len(reqs[i]) + 1
			received += len(out[i]) + 1
		}
		return out
	}
	a, b := ts.dial(t), ts.dial(t)
	do(a, "GET k", "AUTH nope", "AUTH pw", "PUT k 1", "GET nokey", "DEL nokey", "COMMIT", "ROLLBACK",
		"START", "START", "START", "ROLLBACK", "ROLLBACK", "BOGUS", "GET", "   ", "GET a\x01b", "GET \xff",
		"EXPIRE k 0", "KEYS k", "PUT "+strings.Repeat("v", 70), "PING")
	// A conflict.
	do(a, "START", "GET k", "PUT w 1")
	do(b, "AUTH pw", "PUT k 2", "AUTH x")
	if got := do(a, "COMMIT")[0]; !strings.Contains(got, "conflict") {
		t.Fatalf("COMMIT: %s", got)
	}
	// A pipelined batch: one write, the responses read after.
	batch := strings.Repeat("GET k\n", 50) + "GET nokey\n"
	b.send(batch)
	sent += len(batch)
	for range 51 {
		received += len(b.recv()) + 1
	}
	// A half-close after a line without "\n".
	b.send("PUT half")
	sent += len("PUT half")
	b.c.(*net.TCPConn).CloseWrite()
	received += len(b.recv()) + 1
	b.expectEOF()
	waitFor(t, "b to be gone", func() bool { return ts.numConns() == 1 })

	// The bytes of a response are counted once its write returns, which
	// may be just after the client has read them.
	st := statsWhen(ts, func(st Stats) bool { return st.BytesOut >= uint64(received) })
	want := map[string]uint64{
		"auth_required": 1, "invalid_password": 2, "key_not_found": 3, "no_transaction": 2,
		"nesting_limit": 1, "unknown_command": 1, "wrong_arguments": 1, "empty_request": 1,
		"invalid_key": 1, "invalid_utf8": 1, "invalid_argument": 2, "line_too_long": 1,
		"conflict": 1, "incomplete_request": 1,
	}
	var total uint64
	for _, k := range ErrorKinds() {
		if st.ErrorsByKind[k] != want[k] {
			t.Errorf("errors %s = %d, want %d", k, st.ErrorsByKind[k], want[k])
		}
		total += want[k]
	}
	if st.Errors != total {
		t.Errorf("Errors = %d, want %d", st.Errors, total)
	}
	if st.Conflicts != 1 {
		t.Errorf("Conflicts = %d", st.Conflicts)
	}
	if st.BytesIn != uint64(sent) || st.BytesOut != uint64(received) {
		t.Errorf("bytes in/out = %d/%d, want %d/%d", st.BytesIn, st.BytesOut, sent, received)
	}
	if n := st.Latency.Count(); n != st.Commands || n == 0 {
		t.Errorf("latency histogram counts %d requests, Commands %d", n, st.Commands)
	}
	if st.Latency.Sum <= 0 || st.Latency.Sum > time.Duration(st.Commands)*ioTimeout {
		t.Errorf("latency sum %v for %d requests", st.Latency.Sum, st.Commands)
	}
	// STATS has the totals as numbers.
	got := a.stats()
	if got["errors"] != float64(total) || got["bytes_in"] < float64(sent) || got["bytes_out"] < float64(received) {
		t.Errorf("STATS: %v", got)
	}
}

// TestServerStatsRefused: clients turned away (too many clients,
// protected mode) count as errors of their kind, with the bytes of the
// error line.
func TestServerStatsRefused(t *testing.T) {
	ts := startServer(t, WithMaxClients(1))
	a := ts.dial(t)
	a.do("PING")
	b := ts.dial(t)
	line := b.recv()
	if !strings.HasPrefix(line, `{"status":"Error","mesg":"too many clients`) {
		t.Fatalf("second client: %s", line)
	}
	b.expectEOF()
	want := uint64(len(`{"status":"Ok","result":"PONG"}`) + 1 + len(line) + 1)
	st := statsWhen(ts, func(st Stats) bool { return st.BytesOut >= want })
	if st.ErrorsByKind["too_many_clients"] != 1 || st.Errors != 1 {
		t.Errorf("errors by kind: %v", st.ErrorsByKind)
	}
	if st.BytesOut != want {
		t.Errorf("BytesOut = %d, want %d", st.BytesOut, want)
	}
}

// statsWhen returns the server's Stats once cond holds for them, or after
// a second.
func statsWhen(ts *testServer, cond func(Stats) bool) Stats {
	deadline := time.Now().Add(time.Second)
	for {
		st := ts.Stats()
		if cond(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}
