package kvstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// step is one operation in a transaction script: on the store when txn is
// empty, else on the named transaction (begun by the "begin" op).
type step struct {
	txn, op, key, val string
}

// outcome renders what an operation returned, so that a whole script's
// results compare with one cmp.Diff.
func outcome(val string, ok bool) string {
	if !ok {
		return "<missing>"
	}
	return val
}

func errOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrTxnClosed):
		return "closed"
	case errors.Is(err, ErrTxnTooDeep):
		return "too deep"
	case errors.Is(err, ErrTxnReadOnly):
		return "read-only"
	}
	return "error: " + err.Error()
}

// runScript executes steps against s and returns one outcome per step.
func runScript(t *testing.T, s *Store, steps []step) []string {
	t.Helper()
	txns := map[string]*Txn{}
	var out []string
	for _, st := range steps {
		if st.txn == "" {
			switch st.op {
			case "get":
				out = append(out, outcome(s.Get(st.key)))
			case "put":
				s.Put(st.key, st.val)
				out = append(out, "ok")
			case "del":
				existed, _ := s.Delete(st.key)
				out = append(out, fmt.Sprint(existed))
			case "len":
				out = append(out, fmt.Sprint(s.Len()))
			default:
				t.Fatalf("unknown store op %q", st.op)
			}
			continue
		}
		if st.op == "begin" {
			txns[st.txn] = s.Begin()
			out = append(out, "ok")
			continue
		}
		tx := txns[st.txn]
		if tx == nil {
			t.Fatalf("transaction %q used before begin", st.txn)
		}
		switch st.op {
		case "get":
			out = append(out, outcome(tx.Get(st.key)))
		case "put":
			out = append(out, errOutcome(tx.Put(st.key, st.val)))
		case "del":
			existed, err := tx.Delete(st.key)
			if err != nil {
				out = append(out, errOutcome(err))
			} else {
				out = append(out, fmt.Sprint(existed))
			}
		case "nest":
			out = append(out, errOutcome(tx.Begin()))
		case "commit":
			out = append(out, errOutcome(tx.Commit()))
		case "rollback":
			out = append(out, errOutcome(tx.Rollback()))
		case "depth":
			out = append(out, fmt.Sprint(tx.Depth()))
		default:
			t.Fatalf("unknown txn op %q", st.op)
		}
	}
	return out
}

// S, T and U build steps: S on the store, T and U on transactions "T", "U".
func S(op string, kv ...string) step { return mk("", op, kv) }
func T(op string, kv ...string) step { return mk("T", op, kv) }
func U(op string, kv ...string) step { return mk("U", op, kv) }

func mk(txn, op string, kv []string) step {
	st := step{txn: txn, op: op}
	if len(kv) > 0 {
		st.key = kv[0]
	}
	if len(kv) > 1 {
		st.val = kv[1]
	}
	return st
}

func TestTransactionRules(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name:  "own writes are visible inside, invisible outside until commit",
			steps: []step{T("begin"), T("put", "a", "1"), T("get", "a"), S("get", "a"), T("commit"), S("get", "a")},
			want:  []string{"ok", "ok", "1", "<missing>", "ok", "1"},
		},
		{
			name:  "snapshot ignores later commits",
			steps: []step{S("put", "a", "1"), T("begin"), S("put", "a", "2"), S("put", "b", "x"), T("get", "a"), T("get", "b"), S("get", "a")},
			want:  []string{"ok", "ok", "ok", "ok", "1", "<missing>", "2"},
		},
		{
			name:  "snapshot still sees a key deleted after it",
			steps: []step{S("put", "a", "1"), T("begin"), S("del", "a"), T("get", "a"), S("get", "a")},
			want:  []string{"ok", "ok", "true", "1", "<missing>"},
		},
		{
			name:  "a read key changed by a commit makes commit conflict and apply nothing",
			steps: []step{S("put", "a", "1"), T("begin"), T("get", "a"), S("put", "a", "2"), T("put", "c", "1"), T("commit"), S("get", "c"), S("get", "a"), T("depth"), T("put", "d", "1")},
			want:  []string{"ok", "ok", "1", "ok", "ok", "conflict", "<missing>", "2", "0", "closed"},
		},
		{
			name:  "reading a missing key that is then created conflicts",
			steps: []step{T("begin"), T("get", "a"), S("put", "a", "1"), T("put", "b", "1"), T("commit"), S("get", "b")},
			want:  []string{"ok", "<missing>", "ok", "ok", "conflict", "<missing>"},
		},
		{
			name:  "a read key created and deleted again still conflicts",
			steps: []step{T("begin"), T("get", "a"), S("put", "a", "1"), S("del", "a"), T("put", "b", "1"), T("commit")},
			want:  []string{"ok", "<missing>", "ok", "true", "ok", "conflict"},
		},
		{
			name:  "blind writes do not conflict; the later commit wins",
			steps: []step{S("put", "a", "1"), T("begin"), T("put", "a", "5"), S("put", "a", "2"), T("commit"), S("get", "a")},
			want:  []string{"ok", "ok", "ok", "ok", "ok", "5"},
		},
		{
			name:  "read-only transactions never conflict",
			steps: []step{S("put", "a", "1"), T("begin"), T("get", "a"), S("put", "a", "2"), T("commit")},
			want:  []string{"ok", "ok", "1", "ok", "ok"},
		},
		{
			name:  "a key the transaction wrote first is not a read",
			steps: []step{T("begin"), T("put", "a", "1"), T("get", "a"), S("put", "a", "2"), T("commit"), S("get", "a")},
			want:  []string{"ok", "ok", "1", "ok", "ok", "1"},
		},
		{
			name:  "delete reads existence and conflicts",
			steps: []step{S("put", "a", "1"), T("begin"), T("del", "a"), S("put", "a", "3"), T("commit"), S("get", "a")},
			want:  []string{"ok", "ok", "true", "ok", "conflict", "3"},
		},
		{
			name:  "delete inside a transaction applies at commit",
			steps: []step{S("put", "a", "1"), T("begin"), T("del", "a"), T("get", "a"), S("get", "a"), T("commit"), S("get", "a"), S("len")},
			want:  []string{"ok", "ok", "true", "<missing>", "1", "ok", "<missing>", "0"},
		},
		{
			name:  "delete of a missing key reports it and writes nothing",
			steps: []step{T("begin"), T("del", "a"), T("commit"), S("len")},
			want:  []string{"ok", "false", "ok", "0"},
		},
		{
			name:  "put after delete in one transaction",
			steps: []step{S("put", "a", "1"), T("begin"), T("del", "a"), T("put", "a", "2"), T("get", "a"), T("commit"), S("get", "a")},
			want:  []string{"ok", "ok", "true", "ok", "2", "ok", "2"},
		},
		{
			name: "nested rollback discards only the inner writes",
			steps: []step{T("begin"), T("put", "a", "1"), T("nest"), T("put", "a", "2"), T("put", "b", "2"), T("get", "a"),
				T("rollback"), T("get", "a"), T("get", "b"), T("depth"), T("commit"), S("get", "a"), S("get", "b")},
			want: []string{"ok", "ok", "ok", "ok", "ok", "2", "ok", "1", "<missing>", "1", "ok", "1", "<missing>"},
		},
		{
			name: "nested commit folds into the parent and publishes nothing",
			steps: []step{T("begin"), T("nest"), T("put", "b", "2"), T("depth"), T("commit"), T("depth"), S("get", "b"),
				T("get", "b"), T("rollback"), S("get", "b"), T("depth")},
			want: []string{"ok", "ok", "ok", "2", "ok", "1", "<missing>", "2", "ok", "<missing>", "0"},
		},
		{
			name: "three levels: middle rollback drops the committed innermost too",
			steps: []step{T("begin"), T("put", "a", "1"), T("nest"), T("put", "b", "1"), T("nest"), T("put", "c", "1"),
				T("commit"), T("get", "c"), T("rollback"), T("get", "b"), T("get", "c"), T("get", "a"), T("commit"), S("get", "a"), S("get", "c")},
			want: []string{"ok", "ok", "ok", "ok", "ok", "ok", "ok", "1", "ok", "<missing>", "<missing>", "1", "ok", "1", "<missing>"},
		},
		{
			name: "inner commit never conflicts; the outermost does",
			steps: []step{S("put", "a", "1"), T("begin"), T("nest"), T("get", "a"), S("put", "a", "2"), T("put", "x", "1"),
				T("commit"), T("commit"), S("get", "x")},
			want: []string{"ok", "ok", "ok", "1", "ok", "ok", "ok", "conflict", "<missing>"},
		},
		{
			name: "reads in a rolled-back level still count",
			steps: []step{S("put", "a", "1"), T("begin"), T("nest"), T("get", "a"), T("rollback"), S("put", "a", "2"),
				T("put", "x", "1"), T("commit")},
			want: []string{"ok", "ok", "ok", "1", "ok", "ok", "ok", "conflict"},
		},
		{
			name: "after the outermost level ends everything is closed",
			steps: []step{T("begin"), T("rollback"), T("put", "a", "1"), T("del", "a"), T("commit"), T("rollback"),
				T("nest"), T("get", "a"), T("depth")},
			want: []string{"ok", "ok", "closed", "closed", "closed", "closed", "closed", "<missing>", "0"},
		},
		{
			name: "two writers of a key both read: first committer wins",
			steps: []step{S("put", "a", "1"), T("begin"), U("begin"), T("get", "a"), U("get", "a"), T("put", "a", "T"),
				U("put", "a", "U"), T("commit"), U("commit"), S("get", "a")},
			want: []string{"ok", "ok", "ok", "1", "1", "ok", "ok", "ok", "conflict", "T"},
		},
		{
			name: "write skew is refused",
			steps: []step{S("put", "x", "on"), S("put", "y", "on"), T("begin"), U("begin"), T("get", "x"), T("get", "y"),
				U("get", "x"), U("get", "y"), T("put", "x", "off"), U("put", "y", "off"), T("commit"), U("commit"),
				S("get", "x"), S("get", "y")},
			want: []string{"ok", "ok", "ok", "ok", "on", "on", "on", "on", "ok", "ok", "ok", "conflict", "off", "on"},
		},
		{
			name: "a transaction begun after a commit sees it (real-time order)",
			steps: []step{T("begin"), T("put", "a", "1"), T("commit"), U("begin"), U("get", "a"), U("put", "a", "2"),
				U("commit"), S("get", "a")},
			want: []string{"ok", "ok", "ok", "ok", "1", "ok", "ok", "2"},
		},
		{
			name: "transactions on disjoint keys both commit",
			steps: []step{T("begin"), U("begin"), T("get", "a"), U("get", "b"), T("put", "a", "1"), U("put", "b", "2"),
				T("commit"), U("commit"), S("get", "a"), S("get", "b"), S("len")},
			want: []string{"ok", "ok", "<missing>", "<missing>", "ok", "ok", "ok", "ok", "1", "2", "2"},
		},
		{
			name:  "store operations: put, overwrite, delete, len",
			steps: []step{S("del", "a"), S("put", "a", "1"), S("put", "a", "2"), S("len"), S("get", "a"), S("del", "a"), S("del", "a"), S("get", "a"), S("len")},
			want:  []string{"false", "ok", "ok", "1", "2", "true", "false", "<missing>", "0"},
		},
		{
			name:  "empty values are values",
			steps: []step{S("put", "a", ""), S("get", "a"), T("begin"), T("put", "b", ""), T("get", "b"), T("commit"), S("get", "b"), S("len")},
			want:  []string{"ok", "", "ok", "ok", "", "ok", "", "2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			got := runScript(t, s, tc.steps)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNestingLimit(t *testing.T) {
	s := New()
	tx := s.Begin()
	for tx.Depth() < MaxTxnDepth {
		if err := tx.Begin(); err != nil {
			t.Fatalf("Begin at depth %d: %v", tx.Depth(), err)
		}
	}
	if err := tx.Begin(); !errors.Is(err, ErrTxnTooDeep) {
		t.Fatalf("Begin past MaxTxnDepth = %v, want ErrTxnTooDeep", err)
	}
	if err := tx.Put("k", "v"); err != nil {
		t.Fatal(err)
	}
	for tx.Depth() > 1 {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Get("k"); !ok || got != "v" {
		t.Fatalf("Get(k) = %q, %v after folding %d levels", got, ok, MaxTxnDepth)
	}
}

func TestUpdateRetriesOnConflict(t *testing.T) {
	s := New()
	s.Put("n", "0")
	calls := 0
	err := s.Update(func(tx *Txn) error {
		calls++
		v, _ := tx.Get("n")
		if calls == 1 {
			s.Put("n", "10") // a concurrent commit after our read
		}
		return tx.Put("n", v+"+1")
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get("n")
	if diff := cmp.Diff([]any{2, "10+1"}, []any{calls, got}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUpdateGivesUp(t *testing.T) {
	s := New()
	calls := 0
	err := s.Update(func(tx *Txn) error {
		calls++
		tx.Get("n")
		s.Put("n", "x")
		return tx.Put("m", "y")
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Update = %v, want ErrConflict", err)
	}
	if calls != MaxUpdateAttempts {
		t.Errorf("fn ran %d times, want %d", calls, MaxUpdateAttempts)
	}
	if _, ok := s.Get("m"); ok {
		t.Error("a conflicting Update applied its write")
	}
}

func TestUpdateRollsBackOnError(t *testing.T) {
	s := New()
	boom := errors.New("boom")
	err := s.Update(func(tx *Txn) error {
		if err := tx.Put("a", "1"); err != nil {
			return err
		}
		if err := tx.Begin(); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after a failed Update", s.Len())
	}
	assertNoHistory(t, s)
}

func TestUpdateCommitsOpenNestedLevels(t *testing.T) {
	s := New()
	err := s.Update(func(tx *Txn) error {
		tx.Put("a", "1")
		tx.Begin()
		return tx.Put("b", "2")
	})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{outcome(s.Get("a")), outcome(s.Get("b"))}
	if diff := cmp.Diff([]string{"1", "2"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestViewIsReadOnly(t *testing.T) {
	s := New()
	s.Put("a", "1")
	var got []string
	err := s.View(func(tx *Txn) error {
		got = append(got, outcome(tx.Get("a")))
		s.Put("a", "2")
		got = append(got, outcome(tx.Get("a")))
		got = append(got, errOutcome(tx.Put("a", "3")))
		_, err := tx.Delete("a")
		got = append(got, errOutcome(err))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1", "1", "read-only", "read-only"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	assertNoHistory(t, s)
}

func TestGetDoesNotRetainKey(t *testing.T) {
	s := New()
	s.Put("key", "v")
	buf := []byte("key")
	tx := s.Begin()
	tx.Get(string(buf))
	k := unsafeString(buf)
	tx.Get(k)
	buf[0] = 'X' // the transaction must have copied the key it records
	s.Put("key", "w")
	if err := tx.Put("other", "1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrConflict) {
		t.Fatalf("Commit = %v, want ErrConflict on the recorded read of %q", err, "key")
	}
}

func TestStoreGetAllocatesNothing(t *testing.T) {
	s := New()
	s.Put("key", "value")
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := s.Get("key"); !ok {
			t.Fatal("missing")
		}
		s.Get("missing")
	})
	if allocs != 0 {
		t.Errorf("Store.Get allocates %v times per call, want 0", allocs)
	}
}

func TestStorePutCopiesOnce(t *testing.T) {
	s := New()
	buf := []byte("key value")
	key, val := unsafeString(buf[:3]), unsafeString(buf[4:])
	s.Put(key, val)
	allocs := testing.AllocsPerRun(1000, func() { s.Put(key, val) })
	if allocs != 1 {
		t.Errorf("Store.Put allocates %v times per call, want 1 (the copy of key and value)", allocs)
	}
	copy(buf, "XXX YYYYY") // the store must not see the caller's memory change
	if v, ok := s.Get("key"); !ok || v != "value" {
		t.Errorf("after the caller reused its buffer, Get(key) = %q, %v", v, ok)
	}
	if _, ok := s.Get("XXX"); ok {
		t.Error("the store's key changed with the caller's buffer")
	}
}

func TestManyKeys(t *testing.T) {
	s := New()
	const n = 10000
	for i := range n {
		s.Put(fmt.Sprint("k", i), strings.Repeat("v", i%7))
	}
	for i := 0; i < n; i += 2 {
		if existed, _ := s.Delete(fmt.Sprint("k", i)); !existed {
			t.Fatalf("Delete(k%d) = false", i)
		}
	}
	if s.Len() != n/2 {
		t.Fatalf("Len = %d, want %d", s.Len(), n/2)
	}
	for i := range n {
		v, ok := s.Get(fmt.Sprint("k", i))
		if want := i%2 == 1; ok != want || (ok && v != strings.Repeat("v", i%7)) {
			t.Fatalf("Get(k%d) = %q, %v", i, v, ok)
		}
	}
	assertNoHistory(t, s)
}
