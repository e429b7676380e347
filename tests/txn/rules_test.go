package txn

import (
	"errors"

	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// conflictRules checks, step by step with two clients, the rules of
// docs/PROTOCOL.md ("Transactions") that the randomized scenarios only reach by
// chance: which concurrent changes make a COMMIT fail and which do not,
// the snapshot taken at START, real-time order, and nested rollback.
func conflictRules(addr string, _ bool) (*outcome, error) {
	o := &outcome{}
	cs, closeAll, err := dialAll(addr, 2)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	a, b := cs[0], cs[1]
	var first error
	must := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	get := func(c *kvclient.Client, k string) string {
		v, err := c.Get(k)
		if errors.Is(err, kvclient.ErrNotFound) {
			return "<absent>"
		}
		must(err)
		o.reads.Add(1)
		return v
	}
	commitWant := func(rule string, wantOK bool) {
		ok, err := commit(a, o)
		must(err)
		if err == nil && ok != wantOK {
			o.violate("%s: COMMIT succeeded=%v, want %v", rule, ok, wantOK)
		}
	}
	expect := func(rule, k, want string) {
		if got := get(b, k); got != want {
			o.violate("%s: %s = %s, want %s", rule, k, got, want)
		}
	}

	// A blind write does not conflict with a concurrent write.
	must(a.Start())
	must(a.Put("r-blind", "a"))
	must(b.Put("r-blind", "b"))
	commitWant("blind write", true)
	expect("blind write", "r-blind", "a")

	// A read key changed by another commit makes COMMIT fail, and none
	// of the transaction applies.
	must(b.Put("r-read", "0"))
	must(a.Start())
	get(a, "r-read")
	must(a.Put("r-read-other", "x"))
	must(b.Put("r-read", "1"))
	commitWant("read then concurrent write", false)
	expect("read then concurrent write", "r-read-other", "<absent>")

	// DEL reads whether the key exists.
	must(b.Put("r-del", "0"))
	must(a.Start())
	must(a.Del("r-del"))
	must(b.Put("r-del", "1"))
	commitWant("DEL then concurrent write", false)
	expect("DEL then concurrent write", "r-del", "1")

	// Reading a missing key conflicts with its creation.
	must(a.Start())
	get(a, "r-miss")
	must(a.Put("r-miss-other", "x"))
	must(b.Put("r-miss", "1"))
	commitWant("missing key then concurrent create", false)
	expect("missing key then concurrent create", "r-miss-other", "<absent>")

	// Reads see the snapshot taken at START; read-only never fails.
	must(b.Put("r-snap", "old"))
	must(a.Start())
	get(a, "r-snap")
	must(b.Put("r-snap", "new"))
	must(b.Put("r-snap2", "new"))
	if v := get(a, "r-snap"); v != "old" {
		o.violate("snapshot: second read saw %s, want old", v)
	}
	if v := get(a, "r-snap2"); v != "<absent>" {
		o.violate("snapshot: key created after START is visible (%s)", v)
	}
	commitWant("read-only after concurrent writes", true)

	// Real time: a write acknowledged before START is visible.
	must(b.Put("r-rt", "1"))
	must(a.Start())
	if v := get(a, "r-rt"); v != "1" {
		o.violate("real time: transaction started after an acknowledged PUT saw %s", v)
	}
	commitWant("real time", true)

	// Nested: ROLLBACK discards only the inner writes; nothing is visible
	// before the outermost COMMIT.
	must(a.Start())
	must(a.Put("r-nest", "1"))
	must(a.Start())
	must(a.Put("r-nest", "2"))
	must(a.Put("r-nest-inner", "x"))
	must(a.Rollback())
	if v := get(a, "r-nest"); v != "1" {
		o.violate("nested: after inner ROLLBACK r-nest = %s, want 1", v)
	}
	must(a.Start())
	must(a.Put("r-nest-2", "y"))
	must(a.Commit()) // inner: folds into the outer transaction
	expect("nested: before the outer COMMIT", "r-nest-2", "<absent>")
	commitWant("nested", true)
	expect("nested", "r-nest", "1")
	expect("nested", "r-nest-inner", "<absent>")
	expect("nested", "r-nest-2", "y")
	return o, first
}
