package kvstore

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLostUpdate runs read-increment-write transactions from many goroutines
// without retries: the counter must end at exactly the number of commits that
// succeeded, and some must have conflicted.
func TestLostUpdate(t *testing.T) {
	s := New()
	s.Put("n", "0")
	const workers, each = 8, 300
	var ok, conflicts atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				tx := s.Begin()
				v, _ := tx.Get("n")
				n, _ := strconv.Atoi(v)
				tx.Put("n", strconv.Itoa(n+1))
				switch err := tx.Commit(); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, _ := s.Get("n")
	if got != strconv.FormatInt(ok.Load(), 10) {
		t.Fatalf("counter = %s, successful commits = %d (conflicts %d)", got, ok.Load(), conflicts.Load())
	}
	if ok.Load()+conflicts.Load() != workers*each {
		t.Fatalf("ok %d + conflicts %d != %d", ok.Load(), conflicts.Load(), workers*each)
	}
	assertNoHistory(t, s)
}

// TestUpdateCounter does the same through Update, which retries: no
// increment may be lost.
func TestUpdateCounter(t *testing.T) {
	s := New()
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				err := s.Update(func(tx *Txn) error {
					v, _ := tx.Get("n")
					n, _ := strconv.Atoi(v)
					return tx.Put("n", strconv.Itoa(n+1))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, _ := s.Get("n"); got != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d", got, workers*each)
	}
}

// TestWriteSkewConcurrent plays the two-doctors-on-call pattern many times
// with real goroutines: both read both flags, each turns its own off if the
// other is on. Serializability means at least one doctor stays on call.
func TestWriteSkewConcurrent(t *testing.T) {
	s := New()
	for round := range 500 {
		s.Put("alice", "on")
		s.Put("bob", "on")
		var ready, wg sync.WaitGroup
		ready.Add(2)
		committed := make([]bool, 2)
		for i, me := range []string{"alice", "bob"} {
			wg.Go(func() {
				tx := s.Begin()
				a, _ := tx.Get("alice")
				b, _ := tx.Get("bob")
				ready.Done()
				ready.Wait() // both have read before either commits
				if a == "on" && b == "on" {
					tx.Put(me, "off")
				}
				committed[i] = tx.Commit() == nil
			})
		}
		wg.Wait()
		a, _ := s.Get("alice")
		b, _ := s.Get("bob")
		if a == "off" && b == "off" {
			t.Fatalf("round %d: write skew: both doctors went off call (commits %v)", round, committed)
		}
		if committed[0] && committed[1] {
			t.Fatalf("round %d: both transactions committed", round)
		}
	}
}

// TestAtomicVisibility commits transactions that set ten keys to the same
// value while readers check they never see a mix, both in transactions
// (one snapshot) and with plain Gets (linearizable: reading the keys in
// commit order never goes backwards).
func TestAtomicVisibility(t *testing.T) {
	s := New()
	const keys = 10
	key := func(i int) string { return fmt.Sprint("k", i) }
	for i := range keys {
		s.Put(key(i), "0")
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop.Store(true)
		for v := 1; v <= 2000; v++ {
			err := s.Update(func(tx *Txn) error {
				for i := range keys {
					tx.Put(key(i), strconv.Itoa(v))
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
				s.View(func(tx *Txn) error {
					first, _ := tx.Get(key(0))
					for i := 1; i < keys; i++ {
						if v, _ := tx.Get(key(i)); v != first {
							t.Errorf("transaction saw %s=%s and %s=%s", key(0), first, key(i), v)
							stop.Store(true)
						}
					}
					return nil
				})
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			prev := -1
			for i := range keys {
				v, _ := s.Get(key(i))
				n, _ := strconv.Atoi(v)
				if n < prev {
					t.Errorf("plain Gets saw %s=%d after %s=%d: half a commit", key(i), n, key(i-1), prev)
					stop.Store(true)
				}
				prev = n
			}
		}
	})
	wg.Wait()
}

// TestBank moves money between accounts in transactions while auditors sum
// all accounts in transactions: every audit and the end state see the total.
func TestBank(t *testing.T) {
	s := New()
	const accounts, total = 10, 1000
	acct := func(i int) string { return fmt.Sprint("acct", i) }
	for i := range accounts {
		s.Put(acct(i), strconv.Itoa(total/accounts))
	}
	sum := func(tx *Txn) int {
		n := 0
		for i := range accounts {
			v, _ := tx.Get(acct(i))
			x, _ := strconv.Atoi(v)
			n += x
		}
		return n
	}
	var stop atomic.Bool
	var transfers sync.WaitGroup
	for w := range 4 {
		transfers.Go(func() {
			for i := range 500 {
				from, to := (w+i)%accounts, (w*3+i*7+1)%accounts
				if from == to {
					continue
				}
				err := s.Update(func(tx *Txn) error {
					fv, _ := tx.Get(acct(from))
					tv, _ := tx.Get(acct(to))
					f, _ := strconv.Atoi(fv)
					g, _ := strconv.Atoi(tv)
					amount := min(f, 1+i%17)
					tx.Put(acct(from), strconv.Itoa(f-amount))
					return tx.Put(acct(to), strconv.Itoa(g+amount))
				})
				if err != nil && !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			}
		})
	}
	var audits sync.WaitGroup
	for range 2 {
		audits.Go(func() {
			for !stop.Load() {
				s.View(func(tx *Txn) error {
					if n := sum(tx); n != total {
						t.Errorf("audit saw total %d, want %d", n, total)
					}
					return nil
				})
			}
		})
	}
	transfers.Wait()
	stop.Store(true)
	audits.Wait()
	s.View(func(tx *Txn) error {
		if n := sum(tx); n != total {
			t.Errorf("final total %d, want %d", n, total)
		}
		return nil
	})
	assertNoHistory(t, s)
}

// TestOpenTransactionBlocksNobody keeps transactions open (with reads and
// buffered writes, nested) while other goroutines do every kind of
// operation; they must all finish.
func TestOpenTransactionBlocksNobody(t *testing.T) {
	s := New()
	s.Put("a", "1")
	open := s.Begin()
	open.Get("a")
	open.Put("a", "mine")
	open.Begin()
	open.Put("b", "mine")

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Put("a", "2")
		s.Get("a")
		s.Delete("a")
		s.Update(func(tx *Txn) error { return tx.Put("b", "x") })
		s.View(func(tx *Txn) error { tx.Get("b"); return nil })
		other := s.Begin()
		other.Get("a")
		other.Put("a", "3")
		if err := other.Commit(); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("operations blocked behind an open transaction")
	}
	if err := open.Commit(); err != nil { // the inner level
		t.Fatal(err)
	}
	if err := open.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("outer Commit = %v, want ErrConflict", err)
	}
}

// TestGetDuringChurn reads keys that never change while writers insert and
// delete hundreds of others in the same shard, which grows its table and
// shifts slots back on removal under the readers' feet: a lock-free Get
// must never miss a stable key or return another key's value.
func TestGetDuringChurn(t *testing.T) {
	s := New()
	// All keys in one shard, so that readers and writers meet.
	var stable, churn []string
	for i := 0; len(stable) < 64 || len(churn) < 400; i++ {
		k := fmt.Sprint("k", i)
		if shardIndex(s.hash(k)) != 0 {
			continue
		}
		if len(stable) < 64 {
			stable = append(stable, k)
		} else {
			churn = append(churn, k)
		}
	}
	for _, k := range stable {
		s.Put(k, "v"+k)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			for _, k := range churn {
				s.Put(k, "x")
			}
			for _, k := range churn {
				s.Delete(k)
			}
		}
	})
	wg.Go(func() {
		for n := 0; !stop.Load(); n++ {
			k := stable[n%len(stable)]
			if v, ok := s.Get(k); !ok || v != "v"+k {
				t.Errorf("Get(%s) = %q, %v during churn", k, v, ok)
				stop.Store(true)
			}
		}
	})
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
}

// TestGetWaitsForWriter takes a shard's write lock, empties a key's slot as
// a writer might in the middle of moving it, and checks that a lock-free
// Get started meanwhile neither reports the key missing nor returns before
// the writer is done, and then sees the key.
func TestGetWaitsForWriter(t *testing.T) {
	s := New()
	s.Put("k", "v")
	h := s.hash("k")
	sh := &s.shards[shardIndex(h)]

	sh.lock()
	i := sh.t.find("k", h)
	saved := sh.t.slots[i]
	sh.t.store(i, slot{}) // the key is nowhere for the moment

	got := make(chan string, 1)
	go func() {
		v, ok := s.Get("k")
		got <- outcome(v, ok)
	}()
	select {
	case v := <-got:
		t.Fatalf("Get returned %q while a writer held the shard", v)
	case <-time.After(50 * time.Millisecond):
	}
	sh.t.store(i, saved)
	sh.unlock()
	if v := <-got; v != "v" {
		t.Fatalf("Get = %q after the writer finished, want v", v)
	}

	// A reader that probed before the writer started and finishes after it
	// must not trust what it read: the sequence number changed.
	seq := sh.seq.Load()
	sh.lock()
	sh.unlock()
	if sh.seq.Load() == seq || sh.seq.Load()&1 != 0 {
		t.Fatalf("a write moved seq from %d to %d; readers could not tell", seq, sh.seq.Load())
	}
}
