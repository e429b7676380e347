package elle

import (
	"strings"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/proxy"
)

func workload(seed uint64) Config {
	c := Config{Clients: 6, Keys: 4, TxnsPerClient: 200, MaxMops: 4, Duration: 15 * time.Second, Seed: seed}
	if testing.Short() {
		c.TxnsPerClient = 60
	}
	return c
}

func runElle(t *testing.T, addr string, cfg Config) *Report {
	t.Helper()
	h, err := Run(addr, cfg)
	if err != nil {
		t.Fatalf("workload: %v", err)
	}
	rep := Check(h, Options{RealTime: true})
	t.Logf("%d transactions: %s", len(h), rep)
	return rep
}

// TestElleKVD: list-append transactions (with nested transactions and
// rollbacks) from concurrent clients over TCP must be strictly
// serializable: no anomaly of any kind.
func TestElleKVD(t *testing.T) {
	base := harness.Goroutines()
	srv := harness.Start(t)
	// Few keys: heavy contention, many conflicts. More keys and clients:
	// longer transactions that commit more often.
	wide := workload(2)
	wide.Clients, wide.Keys, wide.MaxMops, wide.KeyPrefix = 8, 10, 6, "wide-"
	for _, cfg := range []Config{workload(1), wide} {
		rep := runElle(t, srv.Addr, cfg)
		if !rep.Valid() {
			t.Fatalf("anomalies on kvd:\n%s", rep)
		}
		if rep.Committed < 100 || rep.Edges["rw"] == 0 || rep.Edges["wr"] == 0 || rep.Edges["ww"] == 0 {
			t.Fatalf("history too thin to mean anything: %s", rep)
		}
	}
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}

// phantomWorkload mixes phantom probes (list a prefix, create a key under
// it) into the list-append workload.
func phantomWorkload(seed uint64) Config {
	c := workload(seed)
	c.KeyPrefix, c.Phantoms, c.PhantomGroups = "phantom-", 40, 4
	return c
}

// TestElleKVDPhantoms: with listings, the history must still be strictly
// serializable: a listing in a transaction is validated at commit like a
// read of the whole prefix, so no phantom cycle commits.
func TestElleKVDPhantoms(t *testing.T) {
	srv := harness.Start(t)
	rep := runElle(t, srv.Addr, phantomWorkload(3))
	if !rep.Valid() {
		t.Fatalf("anomalies on kvd:\n%s", rep)
	}
	if rep.Committed < 100 || rep.Edges["rw"] == 0 || rep.Edges["wr"] == 0 {
		t.Fatalf("history too thin to mean anything: %s", rep)
	}
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestElleCatchesUnvalidatedListings: a front end whose listings escape
// the transaction (range reads not validated) lets phantoms commit; the
// checker must see the cycles.
func TestElleCatchesUnvalidatedListings(t *testing.T) {
	srv := harness.Start(t)
	p, err := proxy.Start(srv.Addr, proxy.UnvalidatedListing)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := phantomWorkload(4)
	cfg.Phantoms = 100 // only phantom probes: no other anomaly to find
	rep := runElle(t, p.Addr(), cfg)
	if rep.Valid() {
		t.Fatalf("checker accepted unvalidated listings: %s", rep)
	}
	for _, k := range rep.Kinds() {
		if !strings.HasPrefix(k, "G2") && !strings.HasPrefix(k, "G-single") {
			t.Errorf("unexpected anomaly kind %s: %s", k, rep)
		}
	}
}

// TestElleRejectsBrokenVariants runs the same workload through each broken
// proxy; the checker must report anomalies for every one.
func TestElleRejectsBrokenVariants(t *testing.T) {
	for _, mode := range []proxy.Mode{proxy.SplitTxn, proxy.IgnoreConflicts, proxy.StaleReads} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := harness.Start(t)
			p, err := proxy.Start(srv.Addr, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			cfg := workload(2)
			cfg.TxnsPerClient = 40
			rep := runElle(t, p.Addr(), cfg)
			if rep.Valid() {
				t.Fatalf("checker accepted the %s variant: %s", mode, rep)
			}
		})
	}
}
