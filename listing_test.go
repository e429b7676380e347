package kvstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// collect returns the pairs of a listing, as "key=value".
func collect(seq func(func(string, string) bool)) []string {
	var out []string
	for k, v := range seq {
		out = append(out, k+"="+v)
	}
	return out
}

func TestAscendOrderPrefixAfterAndStop(t *testing.T) {
	s := New()
	want := map[string]string{}
	for i := 999; i >= 0; i-- { // inserted in reverse order, spread over shards
		k := fmt.Sprintf("user:%03d", i)
		s.Put(k, fmt.Sprint(i))
		want[k] = fmt.Sprint(i)
	}
	s.Put("user", "bare")
	s.Put("users", "other")
	s.Put("a", "first")
	s.Put("zzz", "last")

	got := collect(s.Ascend("user:"))
	keys := slices.Sorted(maps.Keys(want))
	if len(got) != len(keys) {
		t.Fatalf("Ascend(user:) listed %d keys, want %d", len(got), len(keys))
	}
	for i, k := range keys {
		if got[i] != k+"="+want[k] {
			t.Fatalf("entry %d = %q, want %q", i, got[i], k+"="+want[k])
		}
	}
	all := collect(s.Ascend(""))
	if len(all) != 1004 || all[0] != "a=first" || all[1] != "user=bare" || all[1003] != "zzz=last" {
		t.Fatalf("Ascend(\"\") = %d keys, %v ... %v", len(all), all[:2], all[len(all)-1])
	}
	page := collect(s.AscendAfter("user:", "user:500"))
	if len(page) != 499 || page[0] != "user:501=501" {
		t.Fatalf("AscendAfter(user:, user:500) = %d keys starting %v", len(page), page[:1])
	}
	// after before the prefix: the whole prefix.
	if n := len(collect(s.AscendAfter("user:", "a"))); n != 1000 {
		t.Fatalf("AscendAfter(user:, a) = %d keys, want 1000", n)
	}
	// Early stop.
	var first []string
	for k := range s.Ascend("user:") {
		first = append(first, k)
		if len(first) == 3 {
			break
		}
	}
	if !slices.Equal(first, []string{"user:000", "user:001", "user:002"}) {
		t.Fatalf("first three = %v", first)
	}
	if got := collect(s.Ascend("nothing")); len(got) != 0 {
		t.Fatalf("Ascend(nothing) = %v", got)
	}
	// Deleted keys are not listed, and leave the ordered sets once collected.
	for i := 0; i < 1000; i += 2 {
		s.Delete(fmt.Sprintf("user:%03d", i))
	}
	if got := collect(s.Ascend("user:")); len(got) != 500 || got[0] != "user:001=1" {
		t.Fatalf("after deletes: %d keys starting %v", len(got), got[:1])
	}
	n := 0
	for i := range s.shards {
		n += s.shards[i].t.keys.Len()
	}
	if n != s.Len() {
		t.Fatalf("ordered sets hold %d keys, store %d", n, s.Len())
	}
}

func TestOrderedSetsAreBuiltByTheFirstListing(t *testing.T) {
	s := New(WithMaxMemory(1 << 30)) // with the memory account
	for i := 0; i < 3000; i++ {
		s.Put(fmt.Sprintf("k%05d", i), "v")
	}
	before := s.MemoryUsage()
	for i := range s.shards {
		if s.shards[i].t.keys != nil {
			t.Fatal("ordered set built before any listing")
		}
	}
	if got := collect(s.AscendAfter("k", "k02997")); !slices.Equal(got, []string{"k02998=v", "k02999=v"}) {
		t.Fatalf("first listing = %v", got)
	}
	n := 0
	for i := range s.shards {
		n += s.shards[i].t.keys.Len()
	}
	if n != 3000 || s.MemoryUsage() <= before {
		t.Fatalf("after the first listing: sets hold %d keys; memory %d, was %d", n, s.MemoryUsage(), before)
	}
	// Maintained from then on.
	s.Put("k99999", "v")
	s.Delete("k00000")
	if got := collect(s.Ascend("k")); len(got) != 3000 || got[0] != "k00001=v" || got[2999] != "k99999=v" {
		t.Fatalf("after changes: %d keys, %v ... %v", len(got), got[0], got[len(got)-1])
	}
	assertAccounted(t, s, "after listing")
}

func TestAscendIsASnapshot(t *testing.T) {
	s := New()
	for i := 0; i < 100; i++ {
		s.Put(fmt.Sprintf("k%02d", i), "old")
	}
	var got []string
	for k, v := range s.Ascend("k") {
		if k == "k10" {
			// Changes made during the iteration are not seen by it.
			s.Put("k50", "new")
			s.Delete("k60")
			s.Put("k55x", "new")
		}
		got = append(got, k+"="+v)
	}
	if len(got) != 100 || slices.Contains(got, "k50=new") || !slices.Contains(got, "k60=old") || slices.Contains(got, "k55x=new") {
		t.Fatalf("listing saw changes made during it: %d keys", len(got))
	}
	assertNoHistory(t, s) // the snapshot ended with the loop
}

func TestTxnAscendMergesOwnWrites(t *testing.T) {
	s := New()
	for _, k := range []string{"p:b", "p:d", "p:f", "q:a"} {
		s.Put(k, "store")
	}
	tx := s.Begin()
	defer tx.Rollback()
	tx.Put("p:a", "mine")
	tx.Put("p:d", "mine")
	tx.Delete("p:f")
	tx.Begin()
	tx.Put("p:g", "inner")
	tx.Put("p:c", "inner")
	tx.Delete("p:a")
	s.Put("p:e", "after the snapshot") // invisible to tx
	want := []string{"p:b=store", "p:c=inner", "p:d=mine", "p:g=inner"}
	if got := collect(tx.Ascend("p:")); !slices.Equal(got, want) {
		t.Fatalf("Txn.Ascend = %v, want %v", got, want)
	}
	if got := collect(tx.AscendAfter("p:", "p:c")); !slices.Equal(got, want[2:]) {
		t.Fatalf("Txn.AscendAfter(p:c) = %v, want %v", got, want[2:])
	}
	tx.Rollback() // the inner level
	want = []string{"p:a=mine", "p:b=store", "p:d=mine"}
	if got := collect(tx.Ascend("p:")); !slices.Equal(got, want) {
		t.Fatalf("after inner rollback: %v, want %v", got, want)
	}
}

// TestPhantom is the classic phantom anomaly: two transactions each count
// the keys under a prefix and insert one more under it. Serially, the
// second would count the first's key; so one of them must fail.
func TestPhantom(t *testing.T) {
	s := New()
	s.Put("doctor:alice", "on call")
	s.Put("doctor:bob", "on call")
	count := func(tx *Txn) int {
		n := 0
		for range tx.Ascend("doctor:") {
			n++
		}
		return n
	}
	t1, t2 := s.Begin(), s.Begin()
	n1, n2 := count(t1), count(t2)
	t1.Put(fmt.Sprintf("doctor:new%d", n1), "on call")
	t2.Put(fmt.Sprintf("doctor:new%d-b", n2), "on call")
	if err := t1.Commit(); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	if err := t2.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("second commit = %v, want ErrConflict (phantom)", err)
	}
	if s.Len() != 3 {
		t.Fatalf("store has %d keys, want 3", s.Len())
	}
}

func TestRangeReadConflicts(t *testing.T) {
	setup := func() *Store {
		s := New()
		for _, k := range []string{"r:a", "r:c", "r:e", "s:x"} {
			s.Put(k, "v")
		}
		return s
	}
	tests := []struct {
		name     string
		stopAt   string // break out of the listing after this key ("": list all)
		other    func(s *Store)
		conflict bool
	}{
		{"insert in range", "", func(s *Store) { s.Put("r:b", "v") }, true},
		{"change in range", "", func(s *Store) { s.Put("r:c", "w") }, true},
		{"delete in range", "", func(s *Store) { s.Delete("r:e") }, true},
		{"insert then delete in range", "", func(s *Store) { s.Put("r:z", "v"); s.Delete("r:z") }, true},
		{"insert at end of prefix", "", func(s *Store) { s.Put("r:zzz", "v") }, true},
		{"change outside prefix", "", func(s *Store) { s.Put("s:x", "w"); s.Put("r", "v"); s.Put("rr", "v") }, false},
		{"change past where the listing stopped", "r:c", func(s *Store) { s.Put("r:d", "v"); s.Delete("r:e") }, false},
		{"change before where the listing stopped", "r:c", func(s *Store) { s.Put("r:b", "v") }, true},
		{"change at the stop key", "r:c", func(s *Store) { s.Delete("r:c") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := setup()
			tx := s.Begin()
			for k := range tx.Ascend("r:") {
				if k == tc.stopAt {
					break
				}
			}
			tx.Put("elsewhere", "blind")
			tc.other(s)
			err := tx.Commit()
			if got := errors.Is(err, ErrConflict); got != tc.conflict {
				t.Fatalf("Commit = %v, want conflict %v", err, tc.conflict)
			}
		})
	}
}

func TestViewListingNeverConflicts(t *testing.T) {
	s := New()
	s.Put("v:1", "a")
	err := s.View(func(tx *Txn) error {
		n := len(collect(tx.Ascend("v:")))
		s.Put("v:2", "b")
		if n != 1 || len(collect(tx.Ascend("v:"))) != 1 {
			return fmt.Errorf("view listed %d keys", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAscendLargeAndPaged(t *testing.T) {
	s := New()
	const n = 20000
	for i := 0; i < n; i++ {
		s.Put(fmt.Sprintf("big:%06d", i), "")
	}
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		var page []string
		for k := range s.AscendAfter("big:", after) {
			page = append(page, k)
			if len(page) == 777 {
				break
			}
		}
		all = append(all, page...)
		if len(page) < 777 {
			break
		}
		after = page[len(page)-1]
	}
	if len(all) != n || !slices.IsSorted(all) || !strings.HasSuffix(all[n-1], "019999") {
		t.Fatalf("paged listing: %d keys, sorted %v", len(all), slices.IsSorted(all))
	}
}
