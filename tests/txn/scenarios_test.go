package txn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// outcome collects what a scenario saw: violations of the property it
// checks, and counters that show it did real work.
type outcome struct {
	mu         sync.Mutex
	violations []string
	commits    atomic.Int64
	conflicts  atomic.Int64
	reads      atomic.Int64
}

func (o *outcome) violate(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) < 1000 {
		o.violations = append(o.violations, fmt.Sprintf(format, args...))
	}
}

func (o *outcome) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := fmt.Sprintf("%d commits, %d conflicts, %d checked reads, %d violations",
		o.commits.Load(), o.conflicts.Load(), o.reads.Load(), len(o.violations))
	for i, v := range o.violations {
		if i == 10 {
			s += "\n  ..."
			break
		}
		s += "\n  " + v
	}
	return s
}

// scenario runs against addr until it is done and reports what it saw; err
// is for failures of the harness itself (network errors, protocol
// violations, unexpected error responses).
type scenario func(addr string, short bool) (*outcome, error)

// errs runs fns concurrently and joins their errors.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func dialAll(addr string, n int) ([]*kvclient.Client, func(), error) {
	var cs []*kvclient.Client
	closeAll := func() {
		for _, c := range cs {
			c.Close()
		}
	}
	for range n {
		c, err := kvclient.Dial(addr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	return cs, closeAll, nil
}

func getInt(c *kvclient.Client, key string) (int, error) {
	v, err := c.Get(key)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// commit commits and sorts the outcome: ok, conflict, or a harness error.
func commit(c *kvclient.Client, o *outcome) (bool, error) {
	err := c.Commit()
	switch {
	case err == nil:
		o.commits.Add(1)
		return true, nil
	case errors.Is(err, kvclient.ErrConflict):
		o.conflicts.Add(1)
		return false, nil
	}
	return false, err
}

func duration(short bool) time.Duration {
	if short {
		return 500 * time.Millisecond
	}
	return 1500 * time.Millisecond
}

// bank: accounts with a fixed total; transfers in transactions (retrying on
// conflict) and readers in transactions. Every reader must see the exact
// total and no negative balance, read-only transactions must never fail,
// and the end state must hold the total.
func bank(addr string, short bool) (*outcome, error) {
	const accounts, initial = 5, 100
	const total = accounts * initial
	o := &outcome{}
	cs, closeAll, err := dialAll(addr, 7)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	acct := func(i int) string { return "bank-" + strconv.Itoa(i) }
	for i := range accounts {
		if err := cs[0].Put(acct(i), strconv.Itoa(initial)); err != nil {
			return nil, err
		}
	}
	stop := time.Now().Add(duration(short))
	transfer := func(c *kvclient.Client, seed uint64) error {
		rng := rand.New(rand.NewPCG(seed, 1))
		for time.Now().Before(stop) {
			from, to := rng.IntN(accounts), rng.IntN(accounts-1)
			if to >= from {
				to++
			}
			amt := 1 + rng.IntN(initial/2)
			if err := c.Start(); err != nil {
				return err
			}
			a, err := getInt(c, acct(from))
			if err != nil {
				return err
			}
			b, err := getInt(c, acct(to))
			if err != nil {
				return err
			}
			if a < amt {
				if err := c.Rollback(); err != nil {
					return err
				}
				continue
			}
			if err := c.Put(acct(from), strconv.Itoa(a-amt)); err != nil {
				return err
			}
			if err := c.Put(acct(to), strconv.Itoa(b+amt)); err != nil {
				return err
			}
			if _, err := commit(c, o); err != nil {
				return err
			}
		}
		return nil
	}
	read := func(c *kvclient.Client, inTxn bool) error {
		for time.Now().Before(stop) {
			if err := c.Start(); err != nil {
				return err
			}
			sum := 0
			var bal []int
			for i := range accounts {
				v, err := getInt(c, acct(i))
				if err != nil {
					return err
				}
				sum += v
				bal = append(bal, v)
				if v < 0 {
					o.violate("reader saw negative balance %v", bal)
				}
			}
			o.reads.Add(1)
			if sum != total {
				o.violate("reader saw balances %v, total %d, want %d", bal, sum, total)
			}
			if ok, err := commit(c, o); err != nil {
				return err
			} else if !ok {
				o.violate("read-only transaction failed to commit")
			}
		}
		return nil
	}
	var fns []func() error
	for i := range 5 {
		fns = append(fns, func() error { return transfer(cs[i], uint64(i)) })
	}
	for i := 5; i < 7; i++ {
		fns = append(fns, func() error { return read(cs[i], true) })
	}
	if err := parallel(fns...); err != nil {
		return o, err
	}
	sum := 0
	for i := range accounts {
		v, err := getInt(cs[0], acct(i))
		if err != nil {
			return o, err
		}
		sum += v
	}
	if sum != total {
		o.violate("end state total %d, want %d", sum, total)
	}
	return o, nil
}

// lostUpdate: concurrent read-increment-write transactions on one counter,
// each retried until it commits. The final value must equal the number of
// successful commits.
func lostUpdate(addr string, short bool) (*outcome, error) {
	const clients = 6
	perClient := 40
	if short {
		perClient = 15
	}
	o := &outcome{}
	cs, closeAll, err := dialAll(addr, clients)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	if err := cs[0].Put("counter", "0"); err != nil {
		return nil, err
	}
	var fns []func() error
	for _, c := range cs {
		fns = append(fns, func() error {
			for done := 0; done < perClient; {
				if err := c.Start(); err != nil {
					return err
				}
				v, err := getInt(c, "counter")
				if err != nil {
					return err
				}
				if err := c.Put("counter", strconv.Itoa(v+1)); err != nil {
					return err
				}
				ok, err := commit(c, o)
				if err != nil {
					return err
				}
				if ok {
					done++
				}
			}
			return nil
		})
	}
	if err := parallel(fns...); err != nil {
		return o, err
	}
	final, err := getInt(cs[0], "counter")
	if err != nil {
		return o, err
	}
	o.reads.Add(1)
	if int64(final) != o.commits.Load() {
		o.violate("counter is %d after %d successful increments: %d updates lost", final, o.commits.Load(), o.commits.Load()-int64(final))
	}
	return o, nil
}

// writeSkew: two doctors on call; each, in a transaction, reads both
// on-call flags and, if both are on call, takes itself off. Both read
// before either writes (a barrier forces the race every round).
// Serializability allows at most one of the two commits; since the only
// concurrent change is the other doctor's, exactly one must succeed, and at
// least one doctor stays on call.
func writeSkew(addr string, short bool) (*outcome, error) {
	rounds := 60
	if short {
		rounds = 20
	}
	o := &outcome{}
	cs, closeAll, err := dialAll(addr, 2)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	for r := range rounds {
		keys := [2]string{fmt.Sprintf("oncall-%d-alice", r), fmt.Sprintf("oncall-%d-bob", r)}
		for _, k := range keys {
			if err := cs[0].Put(k, "on"); err != nil {
				return o, err
			}
		}
		var barrier sync.WaitGroup
		barrier.Add(2)
		var committed [2]bool
		err := parallel(func() error { return doctor(cs[0], keys, 0, &barrier, &committed[0], o) },
			func() error { return doctor(cs[1], keys, 1, &barrier, &committed[1], o) })
		if err != nil {
			return o, err
		}
		a, err := cs[0].Get(keys[0])
		if err != nil {
			return o, err
		}
		b, err := cs[0].Get(keys[1])
		if err != nil {
			return o, err
		}
		o.reads.Add(1)
		switch {
		case committed[0] && committed[1]:
			o.violate("round %d: both doctors went off call (write skew); state %s=%s %s=%s", r, keys[0], a, keys[1], b)
		case !committed[0] && !committed[1]:
			o.violate("round %d: both commits failed though only one conflicting change was made", r)
		}
		if a == "off" && b == "off" {
			o.violate("round %d: nobody on call", r)
		}
	}
	return o, nil
}

func doctor(c *kvclient.Client, keys [2]string, me int, barrier *sync.WaitGroup, committed *bool, o *outcome) error {
	released := false
	defer func() {
		if !released {
			barrier.Done()
		}
	}()
	if err := c.Start(); err != nil {
		return err
	}
	onCall := 0
	for _, k := range keys {
		v, err := c.Get(k)
		if err != nil {
			return err
		}
		if v == "on" {
			onCall++
		}
	}
	released = true
	barrier.Done()
	barrier.Wait()
	if onCall < 2 {
		return c.Rollback()
	}
	if err := c.Put(keys[me], "off"); err != nil {
		return err
	}
	ok, err := commit(c, o)
	*committed = ok
	return err
}

// atomicVisibility: writers commit transactions that set keys vis-0..vis-4
// and a generation key to one new generation number. Readers check that a
// transaction sees the same generation on every key, and that plain GETs of
// the keys, in the order the writers write them, never see a generation go
// down (a half-applied commit would show a newer first key and an older
// later key).
func atomicVisibility(addr string, short bool) (*outcome, error) {
	const keys = 5
	o := &outcome{}
	cs, closeAll, err := dialAll(addr, 6)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	key := func(i int) string { return "vis-" + strconv.Itoa(i) }
	for i := range keys {
		if err := cs[0].Put(key(i), "0"); err != nil {
			return nil, err
		}
	}
	if err := cs[0].Put("vis-gen", "0"); err != nil {
		return nil, err
	}
	stop := time.Now().Add(duration(short))
	writer := func(c *kvclient.Client) error {
		for time.Now().Before(stop) {
			if err := c.Start(); err != nil {
				return err
			}
			g, err := getInt(c, "vis-gen")
			if err != nil {
				return err
			}
			g++
			for i := range keys {
				if err := c.Put(key(i), strconv.Itoa(g)); err != nil {
					return err
				}
			}
			if err := c.Put("vis-gen", strconv.Itoa(g)); err != nil {
				return err
			}
			if _, err := commit(c, o); err != nil {
				return err
			}
		}
		return nil
	}
	reader := func(c *kvclient.Client, inTxn bool) error {
		for time.Now().Before(stop) {
			if inTxn {
				if err := c.Start(); err != nil {
					return err
				}
			}
			var gens []int
			for i := range keys {
				g, err := getInt(c, key(i))
				if err != nil {
					return err
				}
				gens = append(gens, g)
			}
			o.reads.Add(1)
			for i := 1; i < keys; i++ {
				if inTxn && gens[i] != gens[0] {
					o.violate("transaction saw generations %v: a commit half applied, or no snapshot", gens)
					break
				}
				if !inTxn && gens[i] < gens[i-1] {
					o.violate("plain reads in write order saw generations %v: a commit half applied", gens)
					break
				}
			}
			if inTxn {
				if ok, err := commit(c, o); err != nil {
					return err
				} else if !ok {
					o.violate("read-only transaction failed to commit")
				}
			}
		}
		return nil
	}
	err = parallel(
		func() error { return writer(cs[0]) },
		func() error { return writer(cs[1]) },
		func() error { return reader(cs[2], true) },
		func() error { return reader(cs[3], true) },
		func() error { return reader(cs[4], false) },
		func() error { return reader(cs[5], false) },
	)
	return o, err
}
