package ordered

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// check compares s with the sorted model and checks the block invariants.
func check(t *testing.T, s *Set, model map[string]bool) {
	t.Helper()
	want := make([]string, 0, len(model))
	for k := range model {
		want = append(want, k)
	}
	slices.Sort(want)
	var got []string
	s.Ascend("", func(k string) bool { got = append(got, k); return true })
	if !slices.Equal(got, want) {
		t.Fatalf("Ascend = %d keys, want %d (first diff in %v vs %v)", len(got), len(want), head(got), head(want))
	}
	if s.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(want))
	}
	for i, b := range s.blocks {
		if len(b) == 0 || len(b) > blockSize {
			t.Fatalf("block %d has %d keys", i, len(b))
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestSetAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s Set
	model := map[string]bool{}
	for step := 0; step < 20000; step++ {
		k := strconv.Itoa(r.IntN(3000))
		if r.IntN(3) == 0 {
			if got, want := s.Delete(k), model[k]; got != want {
				t.Fatalf("Delete(%q) = %v, want %v", k, got, want)
			}
			delete(model, k)
		} else {
			if got, want := s.Insert(k), !model[k]; got != want {
				t.Fatalf("Insert(%q) = %v, want %v", k, got, want)
			}
			model[k] = true
		}
		if step%997 == 0 {
			check(t, &s, model)
		}
	}
	check(t, &s, model)
	for k := range model {
		if !s.Has(k) {
			t.Fatalf("Has(%q) = false", k)
		}
		s.Delete(k)
	}
	check(t, &s, map[string]bool{})
}

func TestSetAscendFromAndStop(t *testing.T) {
	var s Set
	for i := 0; i < 1000; i++ {
		s.Insert(strconv.Itoa(10000 + 2*i)) // even numbers 10000..11998
	}
	var got []string
	s.Ascend("10501", func(k string) bool {
		got = append(got, k)
		return len(got) < 3
	})
	if want := []string{"10502", "10504", "10506"}; !slices.Equal(got, want) {
		t.Fatalf("Ascend from 10501 = %v, want %v", got, want)
	}
	got = nil
	s.Ascend("2", func(k string) bool { got = append(got, k); return true })
	if len(got) != 0 {
		t.Fatalf("Ascend past the end = %v", got)
	}
}

func FuzzSet(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 4, 130})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var s Set
		model := map[string]bool{}
		for i, op := range ops {
			k := strconv.Itoa(int(op & 0x7f))
			if op&0x80 != 0 {
				s.Delete(k)
				delete(model, k)
			} else {
				s.Insert(k)
				model[k] = true
			}
			_ = i
		}
		check(t, &s, model)
	})
}
