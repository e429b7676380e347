package faults

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/kvclient"
)

func dial(t *testing.T, addr string) *kvclient.Client {
	t.Helper()
	c, err := kvclient.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustDo(t *testing.T, c *kvclient.Client, req string) kvclient.Response {
	t.Helper()
	r, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", req, err)
	}
	return r
}

// TestClientsVanish: clients that disconnect in the middle of a line, in
// the middle of a transaction, or half-way through the word COMMIT, by a
// clean close, a reset (RST) or a half-close, must leave no trace: the
// partial request is not executed and the open transaction never applies.
// Meanwhile another client's transaction over the same keys commits.
func TestClientsVanish(t *testing.T) {
	base := harness.Goroutines()
	srv := harness.Start(t)
	type ending int
	const (
		closeConn ending = iota
		reset
		halfClose
	)
	cases := []struct {
		name string
		send string // written, then the client vanishes
		keys []string
		how  ending
	}{
		{"mid-line", "PUT v1 partial", []string{"v1"}, closeConn},
		{"mid-line reset", "PUT v2 partial", []string{"v2"}, reset},
		{"mid-line half-close", "PUT v3 partial", []string{"v3"}, halfClose},
		{"mid-transaction", "START\nPUT v4 a\nDEL shared\nPUT v5 b\n", []string{"v4", "v5"}, closeConn},
		{"mid-transaction reset", "START\nPUT v6 a\nPUT v7 b\n", []string{"v6", "v7"}, reset},
		{"mid-commit", "START\nPUT v8 a\nPUT v9 b\nCOMMI", []string{"v8", "v9"}, closeConn},
		{"mid-commit half-close", "START\nPUT v10 a\nCOMMIT", []string{"v10"}, halfClose},
		{"nested", "START\nPUT v11 a\nSTART\nPUT v12 b\nCOMMIT\n", []string{"v11", "v12"}, reset},
	}
	other := dial(t, srv.Addr)
	mustDo(t, other, "PUT shared 1")
	if r := mustDo(t, other, "START"); !r.OK() {
		t.Fatal(r)
	}
	if r := mustDo(t, other, "GET shared"); !r.OK() {
		t.Fatal(r)
	}
	ref := harness.Goroutines() // server running, one client connected
	for _, tc := range cases {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, tc.send); err != nil {
			t.Fatal(err)
		}
		// Let the server read what was sent before the client goes.
		time.Sleep(20 * time.Millisecond)
		switch tc.how {
		case reset:
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		case halfClose:
			conn.(*net.TCPConn).CloseWrite()
			// The server answers the complete lines, then closes.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("%s: reading after half-close: %v", tc.name, err)
			}
			conn.Close()
		default:
			conn.Close()
		}
	}
	// Every vanished client's connection is gone once the goroutine count
	// is back to ref plus the connection of c.
	c := dial(t, srv.Addr)
	mustDo(t, c, "PING")
	waitGoroutines(t, func() bool { return harness.Goroutines() <= ref+1 })
	for _, tc := range cases {
		for _, k := range tc.keys {
			if _, err := c.Get(k); !errors.Is(err, kvclient.ErrNotFound) {
				t.Errorf("%s: key %s of the vanished client: %v (want not found)", tc.name, k, err)
			}
			if v, ok := srv.Store.Get(k); ok {
				t.Errorf("%s: store holds %s=%q", tc.name, k, v)
			}
		}
	}
	if v, _ := c.Get("shared"); v != "1" {
		t.Errorf("shared = %q, want 1 (vanished DEL applied?)", v)
	}
	// The surviving transaction read "shared"; nothing committed changed
	// it, so it must commit.
	mustDo(t, other, "PUT shared 2")
	if err := other.Commit(); err != nil {
		t.Fatalf("commit of the surviving transaction: %v", err)
	}
	if v, _ := c.Get("shared"); v != "2" {
		t.Errorf("shared = %q after the surviving commit, want 2", v)
	}
	c.Close()
	other.Close()
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// waitGoroutines polls cond for up to 10 seconds.
func waitGoroutines(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %d goroutines", harness.Goroutines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
