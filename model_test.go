package kvstore

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refModel is the simplest store with the same contract: a map, a commit
// counter, and for each key the count at which a commit last changed it.
// Its transactions copy the whole map when they begin.
type refModel struct {
	data    map[string]string
	changed map[string]int
	clock   int
}

type refTxn struct {
	snap   map[string]string
	at     int
	levels []map[string]*string // nil value: a deletion
	reads  map[string]bool
}

func (m *refModel) begin() *refTxn {
	snap := make(map[string]string, len(m.data))
	for k, v := range m.data {
		snap[k] = v
	}
	return &refTxn{snap: snap, at: m.clock, levels: []map[string]*string{{}}, reads: map[string]bool{}}
}

func (m *refModel) put(k, v string) {
	m.clock++
	m.data[k] = v
	m.changed[k] = m.clock
}

func (m *refModel) del(k string) bool {
	if _, ok := m.data[k]; !ok {
		return false
	}
	m.clock++
	delete(m.data, k)
	m.changed[k] = m.clock
	return true
}

func (t *refTxn) get(k string) (string, bool) {
	for i := len(t.levels) - 1; i >= 0; i-- {
		if w, ok := t.levels[i][k]; ok {
			if w == nil {
				return "", false
			}
			return *w, true
		}
	}
	t.reads[k] = true
	v, ok := t.snap[k]
	return v, ok
}

func (t *refTxn) commit(m *refModel) string {
	if len(t.levels) > 1 {
		top := t.levels[len(t.levels)-1]
		t.levels = t.levels[:len(t.levels)-1]
		for k, w := range top {
			t.levels[len(t.levels)-1][k] = w
		}
		return "ok"
	}
	writes := t.levels[0]
	t.levels = nil
	if len(writes) == 0 {
		return "ok"
	}
	for k := range t.reads {
		if m.changed[k] > t.at {
			return "conflict"
		}
	}
	m.clock++
	for k, w := range writes {
		if w != nil {
			m.data[k] = *w
			m.changed[k] = m.clock
		} else if _, ok := m.data[k]; ok {
			delete(m.data, k)
			m.changed[k] = m.clock
		}
	}
	return "ok"
}

// TestAgainstModel runs random interleavings of store operations and up to
// three transactions (nested, committed, rolled back, conflicting) against
// the store and the reference model, and compares every outcome.
func TestAgainstModel(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		runModelSeed(t, uint64(seed))
		if t.Failed() {
			return
		}
	}
}

func runModelSeed(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	keys := []string{"a", "b", "c", "d"}
	s := New()
	m := &refModel{data: map[string]string{}, changed: map[string]int{}}
	var txns [3]*Txn
	var refs [3]*refTxn
	var trace []string

	check := func(op, got, want string) {
		trace = append(trace, fmt.Sprintf("%s -> %s", op, got))
		if got != want {
			t.Fatalf("seed %d: %s = %s, model says %s\ntrace:\n%s", seed, op, got, want, strings.Join(trace, "\n"))
		}
	}
	for range 300 {
		k := keys[rng.IntN(len(keys))]
		v := fmt.Sprint(rng.IntN(100))
		i := rng.IntN(len(txns))
		if txns[i] == nil || rng.IntN(4) == 0 {
			switch rng.IntN(4) {
			case 0:
				check("store put "+k+" "+v, "ok", "ok")
				s.Put(k, v)
				m.put(k, v)
			case 1:
				existed, err := s.Delete(k)
				if err != nil {
					t.Fatal(err)
				}
				check("store del "+k, fmt.Sprint(existed), fmt.Sprint(m.del(k)))
			case 2:
				want, wok := m.data[k]
				check("store get "+k, outcome(s.Get(k)), outcome(want, wok))
			case 3:
				if txns[i] == nil {
					txns[i], refs[i] = s.Begin(), m.begin()
					trace = append(trace, fmt.Sprintf("T%d begin", i))
				}
			}
			continue
		}
		tx, ref := txns[i], refs[i]
		name := fmt.Sprintf("T%d ", i)
		switch rng.IntN(10) {
		case 0, 1, 2:
			check(name+"get "+k, outcome(tx.Get(k)), outcome(ref.get(k)))
		case 3, 4:
			check(name+"put "+k+" "+v, errOutcome(tx.Put(k, v)), "ok")
			ref.levels[len(ref.levels)-1][k] = &v
		case 5:
			existed, err := tx.Delete(k)
			if err != nil {
				t.Fatal(err)
			}
			_, want := ref.get(k)
			if want {
				ref.levels[len(ref.levels)-1][k] = nil
			}
			check(name+"del "+k, fmt.Sprint(existed), fmt.Sprint(want))
		case 6:
			check(name+"nest", errOutcome(tx.Begin()), "ok")
			ref.levels = append(ref.levels, map[string]*string{})
		case 7, 8:
			check(name+"commit", errOutcome(tx.Commit()), ref.commit(m))
		case 9:
			check(name+"rollback", errOutcome(tx.Rollback()), "ok")
			ref.levels = ref.levels[:len(ref.levels)-1]
		}
		check(name+"depth", fmt.Sprint(tx.Depth()), fmt.Sprint(len(ref.levels)))
		if tx.Depth() == 0 {
			txns[i], refs[i] = nil, nil
		}
	}
	for i, tx := range txns {
		for tx != nil && tx.Depth() > 0 {
			tx.Rollback()
		}
		txns[i] = nil
	}
	got := map[string]string{}
	for _, k := range keys {
		if v, ok := s.Get(k); ok {
			got[k] = v
		}
	}
	if diff := cmp.Diff(m.data, got); diff != "" {
		t.Fatalf("seed %d: final contents differ (-model +store):\n%s", seed, diff)
	}
	if s.Len() != len(m.data) {
		t.Fatalf("seed %d: Len = %d, model has %d keys", seed, s.Len(), len(m.data))
	}
	assertNoHistory(t, s)
	assertAccounted(t, s, fmt.Sprint("seed ", seed))
}
