package main

import (
	"io"
	"runtime"
	"testing"
)

// TestReserveLogWriterP: -fsync always with a directory gets one P more
// than it had and keeps the event loops it would have had; the other
// modes, the in-memory store and a GOMAXPROCS from the environment are
// left alone.
func TestReserveLogWriterP(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(procs)
	parse := func(args ...string) *config {
		t.Helper()
		cfg, err := parseConfig(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		args      []string
		env       string
		reserved  bool
		wantLoops int
	}{
		{args: []string{"-dir", dir, "-fsync", "always"}, reserved: true, wantLoops: max(1, procs-1)},
		{args: []string{"-dir", dir, "-fsync", "always", "-event-loops", "3"}, reserved: true, wantLoops: 3},
		{args: []string{"-dir", dir, "-fsync", "always", "-event-loops", "0"}, reserved: true, wantLoops: 0},
		{args: []string{"-dir", dir, "-fsync", "everysec"}, wantLoops: -1},
		{args: []string{"-fsync", "always"}, wantLoops: -1},
		{args: []string{"-dir", dir, "-fsync", "always"}, env: "4", wantLoops: -1},
	} {
		runtime.GOMAXPROCS(procs)
		t.Setenv("GOMAXPROCS", tc.env)
		cfg := parse(tc.args...)
		got := reserveLogWriterP(cfg)
		wantProcs := procs
		if tc.reserved {
			wantProcs++
		}
		if got != tc.reserved || runtime.GOMAXPROCS(0) != wantProcs || cfg.loops != tc.wantLoops {
			t.Errorf("%v (GOMAXPROCS=%q): reserved %v, GOMAXPROCS %d, loops %d; want %v, %d, %d",
				tc.args, tc.env, got, runtime.GOMAXPROCS(0), cfg.loops, tc.reserved, wantProcs, tc.wantLoops)
		}
	}
}
