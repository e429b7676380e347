package elle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// Config shapes a random list-append workload.
type Config struct {
	Clients       int           // concurrent connections
	Keys          int           // distinct keys
	TxnsPerClient int           // upper bound on transactions per client
	MaxMops       int           // micro-operations per transaction, 1..MaxMops
	Duration      time.Duration // upper bound on wall time
	Seed          uint64
	KeyPrefix     string
	// Phantoms, when above 0, makes that share (in percent) of the
	// transactions phantom probes: list a prefix (KEYS <prefix>*), then
	// create a new key under it. Two such transactions that each list
	// before the other's creation form a G2 cycle unless one aborts.
	Phantoms int
	// PhantomGroups is the number of prefixes phantom probes use (1 if 0).
	PhantomGroups int
}

// runner executes transactions and records the history.
type runner struct {
	cfg   Config
	start time.Time
	next  []atomic.Int64 // per key: next value to append
	ids   atomic.Int64
	fresh atomic.Int64 // names of keys created by phantom probes

	mu      sync.Mutex
	history []Txn
}

func (r *runner) now() int64 { return int64(time.Since(r.start)) }

func (r *runner) record(t Txn) {
	t.ID = int(r.ids.Add(1))
	r.mu.Lock()
	r.history = append(r.history, t)
	r.mu.Unlock()
}

// Run drives cfg.Clients concurrent clients against addr, each running
// random transactions of reads and appends over cfg.Keys keys, with random
// nested transactions (START inside START, ending in COMMIT or ROLLBACK)
// and some deliberately rolled-back transactions, then reads every key in
// one final transaction. It returns the history for Check.
//
// A transaction whose COMMIT was answered with a conflict, or that the
// client rolled back, is recorded as Fail; the appends of a rolled-back
// nested transaction are recorded as a separate Fail transaction, so that
// seeing them later is an aborted read (G1a). If a connection breaks, the
// open transaction is recorded as Info and that client stops.
func Run(addr string, cfg Config) ([]Txn, error) {
	r := &runner{cfg: cfg, start: time.Now(), next: make([]atomic.Int64, cfg.Keys)}
	deadline := r.start.Add(cfg.Duration)
	errs := make([]error, cfg.Clients)
	var wg sync.WaitGroup
	for p := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = r.client(addr, p, deadline)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return r.history, err
	}
	// A final read of every key reveals the complete version orders.
	c, err := kvclient.Dial(addr)
	if err != nil {
		return r.history, err
	}
	defer c.Close()
	var mops []Mop
	for k := range cfg.Keys {
		mops = append(mops, Mop{Kind: Read, Key: r.key(k)})
	}
	t, err := r.exec(c, cfg.Clients, mops, -1, false)
	if t.Status != OK && err == nil {
		err = fmt.Errorf("elle: final read-only transaction did not commit (%s)", t.Status)
	}
	r.record(t)
	return r.history, err
}

func (r *runner) key(k int) string { return fmt.Sprintf("%sla%d", r.cfg.KeyPrefix, k) }

func (r *runner) phantomPrefix(g int) string { return fmt.Sprintf("%sph%d:", r.cfg.KeyPrefix, g) }

func (r *runner) client(addr string, process int, deadline time.Time) error {
	c, err := kvclient.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(process)))
	for i := 0; i < r.cfg.TxnsPerClient && time.Now().Before(deadline); i++ {
		if r.cfg.Phantoms > 0 && rng.IntN(100) < r.cfg.Phantoms {
			prefix := r.phantomPrefix(rng.IntN(max(1, r.cfg.PhantomGroups)))
			mops := []Mop{{Kind: List, Key: prefix}, {Kind: Append, Key: fmt.Sprintf("%s%d", prefix, r.fresh.Add(1)), Value: 1}}
			if rng.IntN(2) == 0 { // also read a list-append key: mixes both kinds of edges
				mops = append(mops, Mop{Kind: Read, Key: r.key(rng.IntN(r.cfg.Keys))})
			}
			t, err := r.exec(c, process, mops, -1, false)
			r.record(t)
			if err != nil {
				return err
			}
			if t.Status == Info {
				return nil
			}
			continue
		}
		n := 1 + rng.IntN(r.cfg.MaxMops)
		mops := make([]Mop, n)
		for j := range mops {
			k := rng.IntN(r.cfg.Keys)
			if rng.IntN(2) == 0 {
				mops[j] = Mop{Kind: Read, Key: r.key(k)}
			} else {
				mops[j] = Mop{Kind: Append, Key: r.key(k), Value: int(r.next[k].Add(1))}
			}
		}
		nested := -1 // index of the first mop of a nested block, if any
		if n >= 2 && rng.IntN(4) == 0 {
			nested = rng.IntN(n)
		}
		abort := rng.IntN(10) == 0 // roll back the whole transaction
		if nested >= 0 {
			abort = rng.IntN(3) == 0 // roll back the nested block only
		}
		t, err := r.exec(c, process, mops, nested, abort)
		r.record(t)
		if err != nil {
			return err
		}
		if t.Status == Info {
			return nil
		}
	}
	return nil
}

// errUnknown marks a broken connection: the outcome is unknown.
var errUnknown = errors.New("connection broken")

// exec runs one transaction. Mops from index nested on run inside a nested
// transaction, which is rolled back when abortInner is set and nested >= 0;
// with nested < 0, abortInner rolls back the whole transaction instead of
// committing it.
func (r *runner) exec(c *kvclient.Client, process int, mops []Mop, nested int, abortInner bool) (Txn, error) {
	t := Txn{Process: process, Status: Info, Invoke: r.now(), Complete: 1<<63 - 1}
	state := map[string][]int{} // what this transaction sees, per key read so far
	var inner []Mop             // mops of the nested block
	do := func(req string) (kvclient.Response, error) {
		resp, err := c.Do(req)
		if err != nil {
			if errors.Is(err, kvclient.ErrProtocol) {
				return resp, err
			}
			return resp, errUnknown
		}
		return resp, nil
	}
	expectOK := func(req string) error {
		resp, err := do(req)
		if err == nil && !resp.OK() {
			err = fmt.Errorf("elle: %s: %s", req, resp.Message())
		}
		return err
	}
	read := func(key string) ([]int, error) {
		resp, err := do("GET " + key)
		switch {
		case err != nil:
			return nil, err
		case resp.OK() && resp.Result != nil:
			return ParseList(*resp.Result)
		case resp.IsNotFound():
			return []int{}, nil
		}
		return nil, fmt.Errorf("elle: GET %s: %s", key, resp)
	}
	fail := func(err error) (Txn, error) {
		if errors.Is(err, errUnknown) {
			return t, nil
		}
		return t, err
	}
	if err := expectOK("START"); err != nil {
		return fail(err)
	}
	var done []Mop
	for i, m := range mops {
		if i == nested {
			if err := expectOK("START"); err != nil {
				return fail(err)
			}
		}
		var rec []Mop
		switch m.Kind {
		case List:
			resp, err := do("KEYS " + m.Key + "*")
			if err != nil {
				return fail(err)
			}
			if !resp.OK() || resp.List == nil {
				return t, fmt.Errorf("elle: KEYS %s*: %s", m.Key, resp)
			}
			rec = append(rec, Mop{Kind: List, Key: m.Key, Keys: resp.List})
		case Read:
			l, err := read(m.Key)
			if err != nil {
				return fail(err)
			}
			state[m.Key] = l
			rec = append(rec, Mop{Kind: Read, Key: m.Key, List: l})
		case Append:
			l, ok := state[m.Key]
			if !ok {
				var err error
				if l, err = read(m.Key); err != nil {
					return fail(err)
				}
				rec = append(rec, Mop{Kind: Read, Key: m.Key, List: l})
			}
			nl := append(append([]int{}, l...), m.Value)
			if err := expectOK("PUT " + m.Key + " " + FormatList(nl)); err != nil {
				return fail(err)
			}
			state[m.Key] = nl
			rec = append(rec, m)
		}
		if nested >= 0 && i >= nested {
			inner = append(inner, rec...)
		} else {
			done = append(done, rec...)
		}
	}
	if nested >= 0 {
		if abortInner {
			if err := expectOK("ROLLBACK"); err != nil {
				return fail(err)
			}
			// The rolled-back appends must never be seen: record them as
			// an aborted transaction of their own.
			var appends []Mop
			for _, m := range inner {
				if m.Kind == Append {
					appends = append(appends, m)
				}
			}
			if len(appends) > 0 {
				r.record(Txn{Process: process, Status: Fail, Mops: appends, Invoke: t.Invoke, Complete: r.now()})
			}
		} else {
			if err := expectOK("COMMIT"); err != nil {
				return fail(err)
			}
			done = append(done, inner...)
		}
	}
	// After a nested ROLLBACK, read back one key the block touched: the
	// transaction must see its state from before the block.
	if nested >= 0 && abortInner && len(inner) > 0 {
		k := inner[0].Key
		l, err := read(k)
		if err != nil {
			return fail(err)
		}
		done = append(done, Mop{Kind: Read, Key: k, List: l})
	}
	t.Mops = done
	if nested < 0 && abortInner {
		if err := expectOK("ROLLBACK"); err != nil {
			return fail(err)
		}
		t.Status, t.Complete = Fail, r.now()
		return t, nil
	}
	resp, err := do("COMMIT")
	if err != nil {
		return fail(err)
	}
	t.Complete = r.now()
	switch {
	case resp.OK():
		t.Status = OK
	case resp.IsConflict():
		t.Status = Fail
	default:
		return t, fmt.Errorf("elle: COMMIT: %s", resp)
	}
	return t, nil
}
