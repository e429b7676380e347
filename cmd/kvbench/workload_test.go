package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestKeyspace(t *testing.T) {
	ks := newKeyspace(1000)
	if got := string(ks.key(0)); got != "key:0000000000" {
		t.Errorf("key(0) = %q", got)
	}
	if got := string(ks.key(999)); got != "key:0000000999" {
		t.Errorf("key(999) = %q", got)
	}
	seen := map[string]bool{}
	for i := 0; i < ks.n; i++ {
		k := ks.key(i)
		if len(k) != ks.width || cap(k) != ks.width {
			t.Fatalf("key %d has len %d cap %d, want %d", i, len(k), cap(k), ks.width)
		}
		seen[string(k)] = true
	}
	if len(seen) != 1000 {
		t.Fatalf("%d distinct keys, want 1000", len(seen))
	}
	// Wider key spaces get more digits, and keys stay fixed width.
	if w := keyWidth(123456789012); w != len("key:")+12 {
		t.Errorf("width for a 12-digit key space = %d", w)
	}
}

func TestMakeValue(t *testing.T) {
	v := makeValue(100)
	if len(v) != 100 || bytes.ContainsAny(v, " \t\r\n") {
		t.Fatalf("value %q", v)
	}
	if len(makeValue(0)) != 0 {
		t.Fatal("empty value")
	}
}

func TestParseRatio(t *testing.T) {
	for in, want := range map[string][2]int{"9:1": {9, 1}, "1:1": {1, 1}, "1:0": {1, 0}, "0:1": {0, 1}, " 3 : 2 ": {3, 2}} {
		g, p, err := parseRatio(in)
		if err != nil || g != want[0] || p != want[1] {
			t.Errorf("parseRatio(%q) = %d, %d, %v", in, g, p, err)
		}
	}
	for _, in := range []string{"", "9", "0:0", "-1:2", "a:b", "1:2:3"} {
		if _, _, err := parseRatio(in); err == nil {
			t.Errorf("parseRatio(%q) accepted", in)
		}
	}
}

func TestRNGRange(t *testing.T) {
	r := newRNG(7)
	counts := make([]int, 10)
	for i := 0; i < 100000; i++ {
		n := r.intn(10)
		if n < 0 || n >= 10 {
			t.Fatalf("intn(10) = %d", n)
		}
		counts[n]++
	}
	for i, c := range counts {
		if c < 9000 || c > 11000 {
			t.Errorf("value %d drawn %d times of 100000, want about 10000", i, c)
		}
	}
	if newRNG(1).next() == newRNG(2).next() {
		t.Error("different seeds give the same stream")
	}
}

func testConfig(p protocol, txn float64) *config {
	return &config{
		proto: p, conns: 1, pipeline: 16, get: 9, put: 1, txn: txn, txnKeys: 2,
		keys: newKeyspace(1000), value: makeValue(64), seed: 1,
	}
}

func TestBuildBatchMix(t *testing.T) {
	cfg := testConfig(kvdProto{}, 0)
	w := newWorker(0, cfg, nil)
	gets, puts := 0, 0
	for i := 0; i < 1000; i++ {
		w.buildBatch(16)
		if len(w.units) != 16 || len(w.exp) != 16 {
			t.Fatalf("batch has %d units, %d replies; want 16", len(w.units), len(w.exp))
		}
		lines := strings.Split(strings.TrimSuffix(string(w.buf), "\n"), "\n")
		if len(lines) != 16 {
			t.Fatalf("batch has %d lines", len(lines))
		}
		for j, l := range lines {
			switch {
			case strings.HasPrefix(l, "GET key:") && w.exp[j] == expectGet:
				gets++
			case strings.HasPrefix(l, "PUT key:") && strings.HasSuffix(l, " "+string(cfg.value)) && w.exp[j] == expectOK:
				puts++
			default:
				t.Fatalf("line %q with expectation %v", l, w.exp[j])
			}
		}
	}
	// 9:1 over 16000 operations: about 1600 PUTs.
	if puts < 1400 || puts > 1800 {
		t.Errorf("%d PUTs and %d GETs, want about 1:9", puts, gets)
	}
}

func TestBuildBatchTransactions(t *testing.T) {
	cfg := testConfig(kvdProto{}, 1)
	w := newWorker(0, cfg, nil)
	w.buildBatch(3)
	if len(w.units) != 3 || len(w.exp) != 18 {
		t.Fatalf("%d units, %d replies; want 3 transactions of 6 requests", len(w.units), len(w.exp))
	}
	for i, u := range w.units {
		if !u.txn || u.end != 6*(i+1) {
			t.Errorf("unit %d = %+v", i, u)
		}
	}
	if !strings.HasPrefix(string(w.buf), "START\nGET key:") || strings.Count(string(w.buf), "COMMIT\n") != 3 {
		t.Errorf("batch %q", w.buf)
	}
}

func TestBuildBatchDoesNotAllocate(t *testing.T) {
	for _, p := range []protocol{kvdProto{}, respProto{}} {
		for _, txn := range []float64{0, 0.5} {
			w := newWorker(0, testConfig(p, txn), nil)
			w.buildBatch(64) // grow the buffers once
			w.buildBatch(64)
			allocs := testing.AllocsPerRun(200, func() { w.buildBatch(64) })
			if allocs > 0.1 { // the buffers may grow on a rare unlucky draw
				t.Errorf("%s txn=%v: buildBatch allocates %v times per batch", p.name(), txn, allocs)
			}
		}
	}
}
