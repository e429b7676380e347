package linearizability

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/proxy"
)

func config(seed uint64) Config {
	c := Config{Clients: 10, Keys: 3, OpsPerClient: 300, Duration: 10 * time.Second, Seed: seed, KeyPrefix: fmt.Sprintf("s%d-", seed)}
	if testing.Short() {
		c.OpsPerClient = 100
	}
	return c
}

// runAndCheck runs one workload against addr and checks it.
func runAndCheck(t *testing.T, addr string, cfg Config) Result {
	t.Helper()
	rec, err := Run(addr, cfg)
	if err != nil {
		t.Fatalf("workload: %v", err)
	}
	h := rec.History()
	res, err := Check(h, 60*time.Second)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	t.Logf("%s: %v", Describe(h), res.Verdict)
	return res
}

// TestLinearizableKVD: random single-key GET/PUT/DEL from many clients over
// TCP to a real Server must be linearizable.
func TestLinearizableKVD(t *testing.T) {
	base := harness.Goroutines()
	srv := harness.Start(t)
	for seed := uint64(1); seed <= 2; seed++ {
		res := runAndCheck(t, srv.Addr, config(seed))
		if res.Verdict != porcupine.Ok {
			t.Fatalf("history is %v; porcupine visualization: %s", res.Verdict, res.VisualizationPath)
		}
	}
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// TestLinearizablePipelinedKVD: the same with every client pipelining
// batches of requests, and PUT values of up to a few KiB of spaces, tabs,
// quotes, backslashes and non-ASCII characters, which must come back byte
// for byte (a value nobody wrote makes the history non-linearizable).
func TestLinearizablePipelinedKVD(t *testing.T) {
	base := harness.Goroutines()
	srv := harness.Start(t)
	cfg := config(3)
	// Batches widen every operation's interval; keep the concurrency per
	// key within what porcupine searches quickly.
	cfg.Clients, cfg.Keys, cfg.Pipeline, cfg.MaxPadding = 6, 6, 4, 3000
	res := runAndCheck(t, srv.Addr, cfg)
	if res.Verdict != porcupine.Ok {
		t.Fatalf("history is %v; porcupine visualization: %s", res.Verdict, res.VisualizationPath)
	}
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// TestLinearizabilityRejectsStaleReads shows the check bites: the same
// workload through a proxy that serves some GETs from a stale cache must be
// found not linearizable.
func TestLinearizabilityRejectsStaleReads(t *testing.T) {
	srv := harness.Start(t)
	p, err := proxy.Start(srv.Addr, proxy.StaleReads)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for seed := uint64(1); seed <= 5; seed++ {
		res := runAndCheck(t, p.Addr(), config(seed))
		if res.Verdict == porcupine.Illegal {
			st, err := os.Stat(res.VisualizationPath)
			if err != nil || st.Size() == 0 {
				t.Fatalf("rejected, but no visualization was written: %v", err)
			}
			t.Logf("rejected as expected; porcupine visualization (%d bytes, removed): %s", st.Size(), res.VisualizationPath)
			os.Remove(res.VisualizationPath)
			return
		}
	}
	t.Fatal("porcupine accepted every history served with stale reads")
}

// TestLinearizabilityPassthroughProxy is the control for the proxy: without
// breakage, histories through it stay linearizable.
func TestLinearizabilityPassthroughProxy(t *testing.T) {
	srv := harness.Start(t)
	p, err := proxy.Start(srv.Addr, proxy.Passthrough)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := config(7)
	cfg.OpsPerClient /= 2
	if res := runAndCheck(t, p.Addr(), cfg); res.Verdict != porcupine.Ok {
		t.Fatalf("history is %v; porcupine visualization: %s", res.Verdict, res.VisualizationPath)
	}
}
