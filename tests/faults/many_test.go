//go:build linux || darwin

package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// manyConns is the number of concurrent connections of TestManyConnections:
// the server's default client limit.
const manyConns = kvstore.DefaultMaxClients

// childAddrEnv tells the test binary to act as the client process of
// TestManyConnections instead of running tests.
const childAddrEnv = "KVD_TESTS_MANY_CONNS_ADDR"

// TestMain lets the test binary double as the client process of
// TestManyConnections: the client ends of 10,000 connections live in a
// second process so that neither process needs 20,000 file descriptors.
func TestMain(m *testing.M) {
	if addr := os.Getenv(childAddrEnv); addr != "" {
		os.Exit(manyConnsChild(addr))
	}
	code := m.Run()
	if kvdBuildDir != "" {
		os.RemoveAll(kvdBuildDir)
	}
	os.Exit(code)
}

// raiseNoFile makes sure RLIMIT_NOFILE allows n open files, raising the
// soft limit and, if need be (and allowed), the hard limit.
func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("RLIMIT_NOFILE is %d (hard limit %d) and the OS refused to raise it to %d: %v", lim.Cur, lim.Max, n, err)
	}
	return nil
}

// TestManyConnections: 10,000 concurrent loopback connections are served
// at once: each does a PUT and, after the server has turned away a
// 10,001st connection with one error line, a GET that must see its own
// PUT. Afterwards every connection goroutine is gone.
func TestManyConnections(t *testing.T) {
	if err := raiseNoFile(manyConns + 200); err != nil {
		t.Skipf("cannot open %d connections: %v", manyConns, err)
	}
	base := harness.Goroutines()
	srv := harness.Start(t, kvstore.WithMaxClients(manyConns))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childAddrEnv+"="+srv.Addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	out := bufio.NewScanner(stdout)
	line := func() string {
		if !out.Scan() {
			t.Fatalf("client process ended early: %v\nstderr:\n%s", out.Err(), stderr.String())
		}
		return out.Text()
	}

	first := line()
	if reason, ok := strings.CutPrefix(first, "SKIP "); ok {
		t.Skipf("client process cannot open %d connections: %s", manyConns, reason)
	}
	if first != "READY" {
		t.Fatalf("client process: %s\nstderr:\n%s", first, stderr.String())
	}
	t.Logf("%d connections open and answered after %v", manyConns, time.Since(start).Round(time.Millisecond))
	// READY means all of them are open and answered at once. (The number
	// of goroutines says nothing about it: the epoll backend serves
	// connections without one each.)
	for i := 0; i < manyConns; i += 997 {
		if v, ok := srv.Store.Get(fmt.Sprintf("many-%d", i)); !ok || v != strconv.Itoa(i) {
			t.Errorf("store: many-%d = %q, %v", i, v, ok)
		}
	}

	// One more connection is turned away with one error line.
	extra, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	extra.SetDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(extra)
	extra.Close()
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("connection over the limit: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n")
	if r, perr := kvclient.ParseResponse([]byte(lines[0])); len(lines) != 1 || perr != nil || r.OK() || !strings.Contains(r.Message(), "too many") {
		t.Errorf("connection over the limit got %q, want one error line about too many clients", rest)
	}

	// The connected clients were not disturbed.
	if _, err := io.WriteString(stdin, "CHECK\n"); err != nil {
		t.Fatal(err)
	}
	if res := line(); res != "OK" {
		t.Fatalf("client process after the check: %s\nstderr:\n%s", res, stderr.String())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client process: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("done after %v", time.Since(start).Round(time.Millisecond))
	if err := srv.Shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// manyConnsChild is the client process: it opens manyConns connections to
// addr, sends a PUT on each and reads every answer, reports READY, waits for
// CHECK on stdin, then GETs every key on its own connection and reports OK
// (or the first problem).
func manyConnsChild(addr string) int {
	if err := raiseNoFile(manyConns + 200); err != nil {
		fmt.Println("SKIP", err)
		return 0
	}
	conns := make([]*kvclient.Client, manyConns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	// forAll runs fn on every connection, 16 at a time.
	forAll := func(fn func(i int) error) error {
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < manyConns; i += 16 {
					if err := fn(i); err != nil {
						errs[w] = fmt.Errorf("connection %d: %w", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	expect := func(i int, want string) error {
		r, err := conns[i].Recv()
		if err != nil {
			return err
		}
		if !r.OK() || (want != "" && (r.Result == nil || *r.Result != want)) {
			return fmt.Errorf("response %v, want Ok %q", r, want)
		}
		return nil
	}
	fail := func(what string, err error) int {
		fmt.Println("FAIL", what+":", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	// Open every connection and send a request before reading any answer,
	// so that all of them are open and busy at once.
	err := forAll(func(i int) error {
		conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			return err
		}
		conns[i] = kvclient.New(conn)
		if err := conns[i].Send(fmt.Sprintf("PUT many-%d %d", i, i)); err != nil {
			return err
		}
		return conns[i].Flush()
	})
	if err != nil {
		return fail("dial", err)
	}
	if err := forAll(func(i int) error { return expect(i, "") }); err != nil {
		return fail("PUT", err)
	}
	fmt.Println("READY")
	if s, _ := bufio.NewReader(os.Stdin).ReadString('\n'); s != "CHECK\n" {
		return fail("stdin", fmt.Errorf("got %q", s))
	}
	err = forAll(func(i int) error {
		if err := conns[i].Send(fmt.Sprintf("GET many-%d", i)); err != nil {
			return err
		}
		return conns[i].Flush()
	})
	if err == nil {
		err = forAll(func(i int) error { return expect(i, strconv.Itoa(i)) })
	}
	if err != nil {
		return fail("GET", err)
	}
	fmt.Println("OK")
	return 0
}
