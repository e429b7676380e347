package main

import (
	"bytes"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\nsecond line"), 0o600)
	for _, args := range [][]string{
		{"-max-clients", "-1"},
		{"-max-clients", "0"},
		{"-max-line", "0"},
		{"-idle-timeout", "-1s"},
		{"-fsync", "sometimes"},
		{"-no-such-flag"},
		{"stray"},
		{"-addr", ":0", "extra", "args"},
		{"-password-file", filepath.Join(dir, "missing")},
		{"-password-file", empty},
		{"-tls-cert", "x.pem"},
		{"-tls-cert", "missing.pem", "-tls-key", "missing.key"},
		{"-max-line", "ten"},
		{"-auto-compact", "-1"},
		{"-auto-compact", "64MB"},
	} {
		var stderr bytes.Buffer
		_, err := parseConfig(args, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, err)
		}
	}
}

func TestParseConfigAccepts(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret word\r\nignored\n"), 0o600)
	var stderr bytes.Buffer
	c, err := parseConfig([]string{"-addr", "127.0.0.1:0", "-max-line", "10", "-fsync", "always", "-password-file", pw, "-protected-mode=false", "-log-level", "debug"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.password != "s3cret word" || c.protectedMode || c.maxLine != 10 || c.syncMode.String() != "always" || c.tlsConfig != nil {
		t.Fatalf("config %+v", c)
	}
	if c, err = parseConfig(nil, &stderr); err != nil || !c.protectedMode || c.addr != ":4000" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if c.autoCompactMin() != 64<<20 {
		t.Fatalf("default -auto-compact: %d", c.autoCompactMin())
	}
	for arg, want := range map[string]int64{"0": -1, "1MiB": 1 << 20, "4096": 4096} {
		if c, err = parseConfig([]string{"-auto-compact", arg}, &stderr); err != nil || c.autoCompactMin() != want {
			t.Fatalf("-auto-compact %s: %v, %v; want %d", arg, c, err, want)
		}
	}
	stderr.Reset()
	if _, err = parseConfig([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	first, _, _ := strings.Cut(stderr.String(), "\n")
	if !strings.HasPrefix(first, "kvd is an in-memory key-value datastore") || !strings.Contains(stderr.String(), "Example:") {
		t.Fatalf("-h starts with %q", first)
	}
}

// TestBinaryExitStatus builds kvd and checks its exit statuses and
// messages as a user sees them.
func TestBinaryExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kvd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runKVD := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = time.Second
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
			t.Fatalf("kvd %q did not exit", args)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	for _, args := range [][]string{{"-max-clients", "-1"}, {"-max-line", "0"}, {"-fsync", "bogus"}, {"-bogus"}, {"stray"}} {
		code, _, stderr := runKVD(args...)
		if code != 2 || !strings.Contains(stderr, "kvd") {
			t.Errorf("kvd %q: status %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	if code, stdout, _ := runKVD("-version"); code != 0 || !strings.HasPrefix(stdout, "kvd ") {
		t.Errorf("-version: status %d, %q", code, stdout)
	}
	if code, _, stderr := runKVD("-h"); code != 0 || !strings.HasPrefix(stderr, "kvd is") {
		t.Errorf("-h: status %d, %q", code, stderr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	code, _, stderr := runKVD("-addr", addr)
	if code != 1 || !strings.Contains(stderr, addr+" is already in use; is another kvd running? use -addr") || strings.Contains(stderr, "kvd stopped") {
		t.Errorf("port in use: status %d, stderr %q", code, stderr)
	}
}
