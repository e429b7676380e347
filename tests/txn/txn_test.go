package txn

import (
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/proxy"
)

var scenarios = []struct {
	name string
	run  scenario
	// broken lists the proxy modes this scenario must detect.
	broken []proxy.Mode
}{
	{"Bank", bank, []proxy.Mode{proxy.SplitTxn, proxy.IgnoreConflicts, proxy.StaleReads}},
	{"LostUpdate", lostUpdate, []proxy.Mode{proxy.SplitTxn, proxy.IgnoreConflicts, proxy.StaleReads}},
	{"WriteSkew", writeSkew, []proxy.Mode{proxy.SplitTxn, proxy.IgnoreConflicts}},
	{"AtomicVisibility", atomicVisibility, []proxy.Mode{proxy.SplitTxn, proxy.IgnoreConflicts, proxy.StaleReads}},
	{"ConflictRules", conflictRules, []proxy.Mode{proxy.SplitTxn, proxy.IgnoreConflicts}},
}

// TestTransactionSafety runs every scenario against a real server: no
// violation allowed, and each scenario must have done real work.
func TestTransactionSafety(t *testing.T) {
	base := harness.Goroutines()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			srv := harness.Start(t)
			o, err := sc.run(srv.Addr, testing.Short())
			if err != nil {
				t.Fatalf("scenario error: %v (%v)", err, o)
			}
			t.Log(o)
			if len(o.violations) > 0 {
				t.Fatalf("violations on kvd: %v", o)
			}
			if o.commits.Load() == 0 || o.reads.Load() == 0 {
				t.Fatalf("scenario did no work: %v", o)
			}
			if err := srv.Shutdown(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
	harness.CheckGoroutines(t, base)
}

// TestTransactionSafetyRejectsBrokenVariants runs every scenario through
// each broken proxy it must catch, and fails unless it reports violations.
func TestTransactionSafetyRejectsBrokenVariants(t *testing.T) {
	for _, sc := range scenarios {
		for _, mode := range sc.broken {
			t.Run(sc.name+"/"+mode.String(), func(t *testing.T) {
				srv := harness.Start(t)
				p, err := proxy.Start(srv.Addr, mode)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				// Short runs are plenty to catch these variants.
				o, err := sc.run(p.Addr(), true)
				if err != nil {
					t.Fatalf("scenario error: %v (%v)", err, o)
				}
				if len(o.violations) == 0 {
					t.Fatalf("%s accepted the %s variant: %v", sc.name, mode, o)
				}
				t.Logf("rejected as expected: %v", o)
			})
		}
	}
}
