package linearizability

import (
	"sort"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/proxy"
)

func expiryOp(client int, in ExpiryInput, out ExpiryOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: in.Call, Output: out, Return: out.Return}
}

const sec = int64(time.Second)

// TestExpiryModel checks the model on hand-made histories.
func TestExpiryModel(t *testing.T) {
	put := expiryOp(0, ExpiryInput{Kind: OpPut, Key: "k", Value: "v", Call: 0}, ExpiryOutput{Return: 10})
	expire := expiryOp(0, ExpiryInput{Kind: OpExpire, Key: "k", Seconds: 1, Call: 20}, ExpiryOutput{Found: true, Return: 30})
	get := func(call, ret int64, found bool) porcupine.Operation {
		out := ExpiryOutput{Found: found, Return: ret}
		if found {
			out.Value = "v"
		}
		return expiryOp(1, ExpiryInput{Kind: OpGet, Key: "k", Call: call}, out)
	}
	tests := []struct {
		name string
		h    []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"found before the deadline", []porcupine.Operation{put, expire, get(sec/2, sec/2+10, true)}, porcupine.Ok},
		{"gone after the deadline", []porcupine.Operation{put, expire, get(2*sec, 2*sec+10, false)}, porcupine.Ok},
		{"found long after the deadline", []porcupine.Operation{put, expire, get(2*sec, 2*sec+10, true)}, porcupine.Illegal},
		{"gone long before the deadline", []porcupine.Operation{put, expire, get(sec/2, sec/2+10, false)}, porcupine.Illegal},
		{"gone, then found again", []porcupine.Operation{put, expire, get(2*sec, 2*sec+10, false), get(3*sec, 3*sec+10, true)}, porcupine.Illegal},
		{"a GET spanning the deadline may see either", []porcupine.Operation{put, expire, get(sec/2, 2*sec, true), get(sec/2, 2*sec, false)}, porcupine.Ok},
		{"PUT clears the time to live", []porcupine.Operation{put, expire,
			expiryOp(2, ExpiryInput{Kind: OpPut, Key: "k", Value: "v", Call: 100}, ExpiryOutput{Return: 110}),
			get(5*sec, 5*sec+10, true)}, porcupine.Ok},
	}
	for _, tc := range tests {
		if got := CheckExpiry(tc.h, 10*time.Second); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func expiryConfig(seed uint64) ExpiryConfig {
	c := ExpiryConfig{Clients: 6, Keys: 4, Duration: 6 * time.Second, Seed: seed, KeyPrefix: "x-"}
	if testing.Short() {
		c.Duration = 4 * time.Second
	}
	return c
}

// TestExpiryLinearizableKVD: GET/PUT/DEL/EXPIRE 1 from concurrent clients
// to a real kvd over TCP, with keys expiring during the run, must match the
// model that knows the clock.
func TestExpiryLinearizableKVD(t *testing.T) {
	srv := harness.Start(t)
	h, err := RunExpiry(srv.Addr, expiryConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	// Count the keys seen expiring: a GET that found the key after an
	// applied EXPIRE, then one that missed it, with no write in between.
	type keyState struct{ armed, seen bool }
	states := map[string]*keyState{}
	expiries := 0
	sorted := append([]porcupine.Operation(nil), h...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	for _, op := range sorted {
		in, out := op.Input.(ExpiryInput), op.Output.(ExpiryOutput)
		st := states[in.Key]
		if st == nil {
			st = &keyState{}
			states[in.Key] = st
		}
		switch {
		case in.Kind == OpExpire && out.Found:
			*st = keyState{armed: true}
		case in.Kind != OpGet:
			*st = keyState{}
		case st.armed && out.Found:
			st.seen = true
		case st.armed && st.seen && !out.Found:
			expiries++
			*st = keyState{}
		}
	}
	if res := CheckExpiry(h, 60*time.Second); res != porcupine.Ok {
		t.Fatalf("history of %d operations is %v", len(h), res)
	}
	if expiries < 3 {
		t.Fatalf("only %d keys seen expiring in %d operations: too thin", expiries, len(h))
	}
	t.Logf("%d operations, %d keys seen expiring: ok", len(h), expiries)
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestExpiryCheckerCatchesKeysThatNeverExpire runs the workload through a
// proxy that turns EXPIRE into PERSIST (keys never expire): the checker
// must reject the history.
func TestExpiryCheckerCatchesKeysThatNeverExpire(t *testing.T) {
	srv := harness.Start(t)
	p, err := proxy.Start(srv.Addr, proxy.IgnoreExpire)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h, err := RunExpiry(p.Addr(), expiryConfig(2))
	if err != nil {
		t.Fatal(err)
	}
	if res := CheckExpiry(h, 60*time.Second); res != porcupine.Illegal {
		t.Fatalf("history through the broken proxy is %v, want Illegal", res)
	}
}
