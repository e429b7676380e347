package elle

import (
	"slices"
	"strings"
	"testing"
)

// txn builds a committed transaction spanning [inv, cmp].
func txn(id int, inv, cmp int64, mops ...Mop) Txn {
	return Txn{ID: id, Process: id, Status: OK, Mops: mops, Invoke: inv, Complete: cmp}
}

func failed(t Txn) Txn { t.Status = Fail; return t }

func TestCheckSyntheticHistories(t *testing.T) {
	tests := []struct {
		name     string
		history  []Txn
		realtime bool
		want     []string // anomaly kinds; nil means valid
	}{
		{
			name: "serial history is valid",
			history: []Txn{
				txn(1, 0, 1, R("x"), A("x", 1)),
				txn(2, 2, 3, R("x", 1), A("x", 2), R("y"), A("y", 1)),
				txn(3, 4, 5, R("x", 1, 2), R("y", 1)),
			},
			realtime: true,
		},
		{
			name: "concurrent but serializable is valid",
			history: []Txn{
				txn(1, 0, 10, R("x"), A("x", 1)),
				txn(2, 0, 10, R("y"), A("y", 1), R("x")),
				txn(3, 11, 12, R("x", 1), R("y", 1)),
			},
			realtime: true,
		},
		{
			name: "aborted transactions are ignored",
			history: []Txn{
				failed(txn(1, 0, 1, R("x"), A("x", 1))),
				txn(2, 2, 3, R("x")),
			},
			realtime: true,
		},
		{
			name: "G0 write cycle",
			history: []Txn{
				txn(1, 0, 10, A("x", 1), A("y", 1)),
				txn(2, 0, 10, A("x", 2), A("y", 2)),
				txn(3, 11, 12, R("x", 1, 2), R("y", 2, 1)),
			},
			want: []string{"G0"},
		},
		{
			name: "G1a aborted read",
			history: []Txn{
				failed(txn(1, 0, 1, A("x", 1))),
				txn(2, 2, 3, R("x", 1)),
			},
			want: []string{"G1a"},
		},
		{
			name: "G1b intermediate read",
			history: []Txn{
				txn(1, 0, 10, A("x", 1), A("x", 2)),
				txn(2, 0, 10, R("x", 1)),
				txn(3, 11, 12, R("x", 1, 2)),
			},
			want: []string{"G-single", "G1b"},
		},
		{
			name: "G1c circular information flow",
			history: []Txn{
				txn(1, 0, 10, A("x", 1), R("y", 1)),
				txn(2, 0, 10, A("y", 1), R("x", 1)),
			},
			want: []string{"G1c"},
		},
		{
			name: "G-single read skew",
			history: []Txn{
				txn(1, 0, 10, R("x"), R("y", 1)),
				txn(2, 0, 10, A("x", 1), A("y", 1)),
				txn(3, 11, 12, R("x", 1), R("y", 1)),
			},
			want: []string{"G-single"},
		},
		{
			name: "G2 write skew",
			history: []Txn{
				txn(1, 0, 10, R("x"), R("y"), A("x", 1)),
				txn(2, 0, 10, R("x"), R("y"), A("y", 1)),
				txn(3, 11, 12, R("x", 1), R("y", 1)),
			},
			want: []string{"G2"},
		},
		{
			name: "lost update without later reads",
			history: []Txn{
				txn(1, 0, 10, R("x"), A("x", 1)),
				txn(2, 0, 10, R("x"), A("x", 2)),
			},
			want: []string{"incompatible-order"},
		},
		{
			name: "lost update is an incompatible order",
			history: []Txn{
				txn(1, 0, 10, R("x"), A("x", 1)),
				txn(2, 0, 10, R("x"), A("x", 2)),
				txn(3, 11, 12, R("x", 2)),
				txn(4, 13, 14, R("x", 1)),
			},
			want: []string{"incompatible-order"},
		},
		{
			name: "stale read is a real-time cycle",
			history: []Txn{
				txn(1, 0, 1, R("x"), A("x", 1)),
				txn(2, 2, 3, R("x")),
			},
			realtime: true,
			want:     []string{"G-single-realtime"},
		},
		{
			name: "stale read is serializable without real time",
			history: []Txn{
				txn(1, 0, 1, R("x"), A("x", 1)),
				txn(2, 2, 3, R("x")),
			},
		},
		{
			name: "overlapping intervals get no real-time edge",
			history: []Txn{
				txn(1, 0, 2, R("x"), A("x", 1)),
				txn(2, 2, 3, R("x")),
			},
			realtime: true,
		},
		{
			name: "non-repeatable read inside a transaction",
			history: []Txn{
				txn(1, 0, 10, R("x"), R("x", 1)),
				txn(2, 0, 10, A("x", 1)),
			},
			want: []string{"G-single", "internal"},
		},
		{
			name: "read misses own append",
			history: []Txn{
				txn(1, 0, 10, A("x", 1), R("x")),
			},
			want: []string{"internal"},
		},
		{
			name: "garbage and duplicate",
			history: []Txn{
				txn(1, 0, 1, A("x", 1)),
				txn(2, 2, 3, R("x", 1, 1, 7)),
			},
			want: []string{"duplicate", "garbage"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.history, Options{RealTime: tc.realtime})
			if got := rep.Kinds(); !slices.Equal(got, tc.want) {
				t.Fatalf("anomaly kinds = %v, want %v\n%s", got, tc.want, rep)
			}
			for _, a := range rep.Anomalies {
				if a.Msg == "" {
					t.Errorf("anomaly %s has no explanation", a.Kind)
				}
			}
		})
	}
}

func TestCycleReportNamesEdges(t *testing.T) {
	rep := Check([]Txn{
		txn(1, 0, 10, R("x"), R("y"), A("x", 1)),
		txn(2, 0, 10, R("x"), R("y"), A("y", 1)),
		txn(3, 11, 12, R("x", 1), R("y", 1)),
	}, Options{})
	if rep.Valid() {
		t.Fatal("write skew accepted")
	}
	msg := rep.Anomalies[0].Msg
	for _, want := range []string{"T1 -rw(y)-> T2", "T2 -rw(x)-> T1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("report lacks %q:\n%s", want, msg)
		}
	}
}

func TestListRoundTrip(t *testing.T) {
	for _, l := range [][]int{{}, {1}, {1, 22, 333}} {
		got, err := ParseList(FormatList(l))
		if err != nil || !slices.Equal(got, l) {
			t.Errorf("ParseList(FormatList(%v)) = %v, %v", l, got, err)
		}
	}
	if _, err := ParseList("1,x"); err == nil {
		t.Error("ParseList accepted garbage")
	}
}

// TestCheckPhantoms: two transactions that each list a prefix and create a
// key under it, each without seeing the other's key, form a G2 cycle (the
// phantom); if the second saw the first's key, the history is serial.
func TestCheckPhantoms(t *testing.T) {
	phantom := []Txn{
		txn(1, 0, 10, L("p:"), R("p:1"), A("p:1", 1)),
		txn(2, 1, 11, L("p:"), R("p:2"), A("p:2", 1)),
		txn(3, 20, 30, L("p:", "p:1", "p:2")),
	}
	rep := Check(phantom, Options{RealTime: true})
	if !slices.Contains(rep.Kinds(), "G2") {
		t.Fatalf("phantom not reported as G2: %s", rep)
	}
	serial := []Txn{
		txn(1, 0, 10, L("p:"), R("p:1"), A("p:1", 1)),
		txn(2, 1, 11, L("p:", "p:1"), R("p:2"), A("p:2", 1)),
		txn(3, 20, 30, L("p:", "p:1", "p:2")),
	}
	if rep := Check(serial, Options{RealTime: true}); !rep.Valid() {
		t.Fatalf("serial listings reported: %s", rep)
	}
	// A listing returning a key only an aborted transaction created, or
	// one nobody created.
	bad := []Txn{
		failed(txn(1, 0, 10, R("p:1"), A("p:1", 1))),
		txn(2, 20, 30, L("p:", "p:1", "p:9")),
	}
	if got := Check(bad, Options{}).Kinds(); !slices.Equal(got, []string{"G1a", "garbage"}) {
		t.Fatalf("bad listings: %v", got)
	}
	// A snapshot that missed a key committed before it started: with
	// real-time edges, a stale listing.
	stale := []Txn{
		txn(1, 0, 10, R("p:1"), A("p:1", 1)),
		txn(2, 20, 30, L("p:")),
	}
	if rep := Check(stale, Options{RealTime: true}); !slices.Contains(rep.Kinds(), "G-single-realtime") {
		t.Fatalf("stale listing: %s", rep)
	}
}
