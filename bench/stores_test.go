package bench

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// newStores opens one fresh store of every kind, closed when t ends.
func newStores(t *testing.T) []KV {
	t.Helper()
	var out []KV
	for _, f := range Factories() {
		s, err := f.New()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if s.Name() != f.Name {
			t.Errorf("factory %s made a store named %s", f.Name, s.Name())
		}
		if _, ok := s.(Transactional); ok != f.Transactional {
			t.Errorf("factory %s: Transactional is %v, the store says %v", f.Name, f.Transactional, ok)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("%s: close: %v", s.Name(), err)
			}
		})
		out = append(out, s)
	}
	return out
}

func TestEveryStoreIsCompared(t *testing.T) {
	var names []string
	transactional := map[string]bool{}
	for _, s := range newStores(t) {
		names = append(names, s.Name())
		_, transactional[s.Name()] = s.(Transactional)
	}
	want := "[kvstore rwmap syncmap memdb buntdb badger]"
	if fmt.Sprint(names) != want {
		t.Fatalf("stores %v, want %s", names, want)
	}
	for name, tx := range transactional {
		if tx != (name != "syncmap") {
			t.Errorf("%s: Transactional = %v", name, tx)
		}
	}
}

// TestStoresAgree runs one short script of operations against every store
// and checks that they all give the same answers.
func TestStoresAgree(t *testing.T) {
	for _, s := range newStores(t) {
		t.Run(s.Name(), func(t *testing.T) {
			get := func(key, want string, wantOK bool) {
				t.Helper()
				if v, ok := s.Get(key); v != want || ok != wantOK {
					t.Fatalf("Get(%q) = %q, %v; want %q, %v", key, v, ok, want, wantOK)
				}
			}
			get("a", "", false)
			s.Put("a", "1")
			get("a", "1", true)
			s.Put("a", "2")
			get("a", "2", true)
			s.Put("empty", "")
			get("empty", "", true)
			s.Put("spaces", " x  y ")
			get("spaces", " x  y ", true)
			get("A", "", false) // keys are case-sensitive

			tx, ok := s.(Transactional)
			if !ok {
				return
			}
			// Read-modify-write, reading its own writes.
			err := tx.Update(func(t Tx) error {
				v, ok, err := t.Get("a")
				if err != nil || !ok || v != "2" {
					return fmt.Errorf("Get(a) in txn = %q, %v, %v", v, ok, err)
				}
				if err := t.Put("b", v+"0"); err != nil {
					return err
				}
				if err := t.Put("c", "3"); err != nil {
					return err
				}
				if v, ok, err := t.Get("b"); v != "20" || !ok || err != nil {
					return fmt.Errorf("own write Get(b) = %q, %v, %v", v, ok, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			get("b", "20", true)
			get("c", "3", true)

			// A failing transaction applies nothing.
			boom := errors.New("boom")
			err = tx.Update(func(t Tx) error {
				if err := t.Put("a", "lost"); err != nil {
					return err
				}
				if err := t.Put("d", "lost"); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("failing Update returned %v, want boom", err)
			}
			get("a", "2", true)
			get("d", "", false)

			// Read-only transactions see the data and refuse writes.
			err = tx.View(func(t Tx) error {
				v, ok, err := t.Get("c")
				if v != "3" || !ok || err != nil {
					return fmt.Errorf("View Get(c) = %q, %v, %v", v, ok, err)
				}
				if _, ok, _ := t.Get("nope"); ok {
					return errors.New("View found a missing key")
				}
				if t.Put("c", "4") == nil {
					return errors.New("Put in View succeeded")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			get("c", "3", true)
		})
	}
}

// TestConcurrentPutsAndGets has a few goroutines write disjoint keys while
// reading each other's; every store must end with every write.
func TestConcurrentPutsAndGets(t *testing.T) {
	const writers, perWriter = 4, 200
	for _, s := range newStores(t) {
		t.Run(s.Name(), func(t *testing.T) {
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						s.Put(fmt.Sprintf("w%d:%d", w, i), strconv.Itoa(i))
						s.Get(fmt.Sprintf("w%d:%d", (w+1)%writers, i))
					}
				}()
			}
			wg.Wait()
			for w := 0; w < writers; w++ {
				for i := 0; i < perWriter; i++ {
					k := fmt.Sprintf("w%d:%d", w, i)
					if v, ok := s.Get(k); !ok || v != strconv.Itoa(i) {
						t.Fatalf("Get(%s) = %q, %v", k, v, ok)
					}
				}
			}
		})
	}
}

// TestTransfersPreserveTotal moves units between accounts in concurrent
// read-modify-write transactions, while read-only transactions check that
// the total never changes: a lost update or a torn read shows up as a
// wrong sum.
func TestTransfersPreserveTotal(t *testing.T) {
	const accounts, start, workers, transfers = 8, 100, 4, 150
	for _, s := range newStores(t) {
		tx, ok := s.(Transactional)
		if !ok {
			continue
		}
		t.Run(s.Name(), func(t *testing.T) {
			acct := func(i int) string { return "acct:" + strconv.Itoa(i) }
			for i := 0; i < accounts; i++ {
				s.Put(acct(i), strconv.Itoa(start))
			}
			total := func() (int, error) {
				sum := 0
				err := tx.View(func(t Tx) error {
					for i := 0; i < accounts; i++ {
						v, ok, err := t.Get(acct(i))
						if err != nil || !ok {
							return fmt.Errorf("account %d: %v %v", i, ok, err)
						}
						n, err := strconv.Atoi(v)
						if err != nil {
							return err
						}
						sum += n
					}
					return nil
				})
				return sum, err
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers+1)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < transfers; i++ {
						from, to := (w+i)%accounts, (w*3+i*5+1)%accounts
						if from == to {
							to = (to + 1) % accounts
						}
						err := tx.Update(func(t Tx) error {
							a, _, err := t.Get(acct(from))
							if err != nil {
								return err
							}
							b, _, err := t.Get(acct(to))
							if err != nil {
								return err
							}
							na, _ := strconv.Atoi(a)
							nb, _ := strconv.Atoi(b)
							if err := t.Put(acct(from), strconv.Itoa(na-1)); err != nil {
								return err
							}
							return t.Put(acct(to), strconv.Itoa(nb+1))
						})
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					if sum, err := total(); err != nil || sum != accounts*start {
						errs <- fmt.Errorf("snapshot total %d (%v), want %d", sum, err, accounts*start)
						return
					}
				}
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if sum, err := total(); err != nil || sum != accounts*start {
				t.Fatalf("final total %d (%v), want %d", sum, err, accounts*start)
			}
		})
	}
}
