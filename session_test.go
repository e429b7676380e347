package kvstore

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// exec runs each line through s and returns the response lines without
// their newlines. It reuses one buffer for every line, as a server does, so
// that a Session which kept a view of the line would be caught.
func sessionRun(t testing.TB, s *Session, lines ...string) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 0, 64)
	line := make([]byte, 0, 64)
	for _, l := range lines {
		line = append(line[:0], l...)
		resp, _ := s.ExecuteLine(buf[:0], line)
		for i := range line {
			line[i] = '#' // clobber the request buffer
		}
		if n := len(resp); n == 0 || resp[n-1] != '\n' || strings.Count(string(resp), "\n") != 1 {
			t.Fatalf("response to %q is not one line: %q", l, resp)
		}
		out = append(out, string(resp[:len(resp)-1]))
	}
	return out
}

const (
	respOK       = `{"status":"Ok"}`
	respNoTxn    = `{"status":"Error","mesg":"no transaction"}`
	respConflict = `{"status":"Error","mesg":"conflict: another client changed a key this transaction read; transaction aborted"}`
)

func respResult(v string) string   { return string(appendResult(nil, v)[:len(appendResult(nil, v))-1]) }
func respNotFound(k string) string { return `{"status":"Error","mesg":"key not found: ` + k + `"}` }

func TestSessionCommands(t *testing.T) {
	s := NewSession(New(), 0)
	got := sessionRun(t, s,
		"PUT a 1",
		"GET a",
		"START",
		`PUT georgew {"first_name": "George", "role": "President"}`,
		"GET georgew",
		"COMMIT",
		"GET nobody",
		"DEL a",
		"DEL a",
		"GET a",
		"put K  inner  and trailing  ",
		"get K",
		"Get k",
		"PUT e ",
		"GET e",
		"COMMIT",
		"ROLLBACK",
		"PING",
		"GET a b",
		"FLY",
		"",
		"QUIT",
	)
	want := []string{
		respOK,
		respResult("1"),
		respOK,
		respOK,
		respResult(`{"first_name": "George", "role": "President"}`),
		respOK,
		respNotFound("nobody"),
		respOK,
		respNotFound("a"),
		respNotFound("a"),
		respOK,
		respResult("inner  and trailing  "),
		respNotFound("k"),
		respOK,
		`{"status":"Ok","result":""}`,
		respNoTxn,
		respNoTxn,
		`{"status":"Ok","result":"PONG"}`,
		`{"status":"Error","mesg":"wrong number of arguments for GET: usage: GET <key>"}`,
		`{"status":"Error","mesg":"unknown command \"FLY\" (try HELP)"}`,
		`{"status":"Error","mesg":"empty request"}`,
		`{"status":"Ok","mesg":"Bye"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses mismatch (-want +got):\n%s", diff)
	}
}

func TestSessionExitQuits(t *testing.T) {
	s := NewSession(New(), 0)
	for _, line := range []string{"EXIT", "exit\r\n", "Quit"} {
		out, quit := s.ExecuteLine(nil, []byte(line))
		if !quit || string(out) != "{\"status\":\"Ok\",\"mesg\":\"Bye\"}\n" {
			t.Errorf("%q: quit=%v out=%q", line, quit, out)
		}
	}
	for _, line := range []string{"GET a", "PING", "exits", "HELP"} {
		if _, quit := s.ExecuteLine(nil, []byte(line)); quit {
			t.Errorf("%q quits", line)
		}
	}
}

func TestSessionNestedTransactions(t *testing.T) {
	store := New()
	s := NewSession(store, 0)
	got := sessionRun(t, s,
		"PUT a base",
		"START",
		"PUT a outer",
		"START",
		"PUT a inner",
		"PUT b inner",
		"GET a",
		"ROLLBACK", // drops only the inner writes
		"GET a",
		"GET b",
		"START",
		"DEL a",
		"COMMIT", // folds the delete into the outer level
		"GET a",
		"PUT c 3",
	)
	want := []string{respOK, respOK, respOK, respOK, respOK, respOK, respResult("inner"), respOK, respResult("outer"), respNotFound("b"), respOK, respOK, respOK, respNotFound("a"), respOK}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("responses mismatch (-want +got):\n%s", diff)
	}
	if d := s.Depth(); d != 1 {
		t.Fatalf("Depth = %d, want 1", d)
	}
	// Nothing is visible outside until the outermost COMMIT.
	if v, _ := store.Get("a"); v != "base" {
		t.Fatalf("store a = %q before commit, want base", v)
	}
	if diff := cmp.Diff([]string{respOK, respNoTxn}, sessionRun(t, s, "COMMIT", "COMMIT")); diff != "" {
		t.Fatalf("commit mismatch (-want +got):\n%s", diff)
	}
	if _, found := store.Get("a"); found {
		t.Error("a still in store after committed DEL")
	}
	if v, _ := store.Get("c"); v != "3" {
		t.Errorf("store c = %q, want 3", v)
	}
}

func TestSessionMaxDepth(t *testing.T) {
	s := NewSession(New(), 3)
	got := sessionRun(t, s, "START", "START", "START", "START", "ROLLBACK", "START", "START")
	tooDeep := `{"status":"Error","mesg":"transaction nesting limit reached: 3 levels"}`
	want := []string{respOK, respOK, respOK, tooDeep, respOK, respOK, tooDeep}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses mismatch (-want +got):\n%s", diff)
	}
	if d := s.Depth(); d != 3 {
		t.Errorf("Depth = %d, want 3", d)
	}
	if s := NewSession(New(), MaxTxnDepth+10); s.maxDepth != MaxTxnDepth {
		t.Errorf("maxDepth = %d, want it capped at %d", s.maxDepth, MaxTxnDepth)
	}
	if s := NewSession(New(), -1); s.maxDepth != DefaultMaxTxnDepth {
		t.Errorf("maxDepth = %d, want default %d", s.maxDepth, DefaultMaxTxnDepth)
	}
}

func TestSessionIsolationAndConflict(t *testing.T) {
	store := New()
	a, b := NewSession(store, 0), NewSession(store, 0)
	sessionRun(t, a, "PUT x 1", "PUT y 1")

	// a reads x in its snapshot; b commits a change to x; a's COMMIT fails
	// and nothing of a applies.
	if diff := cmp.Diff([]string{respOK, respResult("1"), respOK}, sessionRun(t, a, "START", "GET x", "PUT y 2")); diff != "" {
		t.Fatal(diff)
	}
	if diff := cmp.Diff([]string{respOK, respResult("1"), respOK, respOK}, sessionRun(t, b, "START", "GET y", "PUT x 9", "COMMIT")); diff != "" {
		t.Fatal(diff)
	}
	// a still sees its snapshot and its own write.
	if diff := cmp.Diff([]string{respResult("1"), respResult("2")}, sessionRun(t, a, "GET x", "GET y")); diff != "" {
		t.Fatal(diff)
	}
	if diff := cmp.Diff([]string{respConflict, respNoTxn, respResult("9"), respResult("1")}, sessionRun(t, a, "COMMIT", "ROLLBACK", "GET x", "GET y")); diff != "" {
		t.Fatal(diff)
	}
	if s := a.Depth(); s != 0 {
		t.Fatalf("Depth after respConflict = %d", s)
	}

	// Blind writes do not respConflict.
	sessionRun(t, a, "START", "PUT x blind")
	sessionRun(t, b, "PUT x other")
	if diff := cmp.Diff([]string{respOK, respResult("blind")}, sessionRun(t, a, "COMMIT", "GET x")); diff != "" {
		t.Fatal(diff)
	}
}

func TestSessionCloseRollsBack(t *testing.T) {
	store := New()
	s := NewSession(store, 0)
	sessionRun(t, s, "PUT keep 1", "START", "PUT a 1", "START", "PUT b 2", "DEL keep")
	s.Close()
	if s.Depth() != 0 {
		t.Fatalf("Depth after Close = %d", s.Depth())
	}
	if _, found := store.Get("a"); found {
		t.Error("a applied after Close")
	}
	if _, found := store.Get("b"); found {
		t.Error("b applied after Close")
	}
	if v, _ := store.Get("keep"); v != "1" {
		t.Errorf("keep = %q after Close", v)
	}
	// The session is usable again.
	if diff := cmp.Diff([]string{respNoTxn, respOK, respResult("2")}, sessionRun(t, s, "COMMIT", "PUT b 2", "GET b")); diff != "" {
		t.Error(diff)
	}
	s.Close() // no transaction: a no-op
}

func TestSessionExecuteHandBuiltRequests(t *testing.T) {
	s := NewSession(New(), 0)
	out, _ := s.Execute(nil, Request{Cmd: CmdPut, Key: []byte("k"), Value: []byte("v v")})
	out, _ = s.Execute(out, Request{Cmd: CmdGet, Key: []byte("k")})
	out, _ = s.Execute(out, Request{Cmd: CmdGet, Key: []byte("bad key")})
	out, _ = s.Execute(out, Request{})
	want := respOK + "\n" + respResult("v v") + "\n" +
		`{"status":"Error","mesg":"invalid key: keys must not contain whitespace or control characters"}` + "\n" +
		`{"status":"Error","mesg":"unknown command: Command(0)"}` + "\n"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Error(diff)
	}
}

func TestSessionAllocs(t *testing.T) {
	store := New()
	s := NewSession(store, 0)
	buf := make([]byte, 0, 256)
	get := []byte("GET somekey\r\n")
	put := []byte("PUT somekey some value\r\n")
	miss := []byte("GET nokey\n")
	sessionRun(t, s, "PUT somekey v")
	if n := testing.AllocsPerRun(200, func() { buf, _ = s.ExecuteLine(buf[:0], get) }); n != 0 {
		t.Errorf("GET: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { buf, _ = s.ExecuteLine(buf[:0], miss) }); n != 0 {
		t.Errorf("GET miss: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() { buf, _ = s.ExecuteLine(buf[:0], put) }); n > 1 {
		t.Errorf("PUT: %v allocs, want at most 1", n)
	}
	if v, _ := store.Get("somekey"); v != "some value" {
		t.Errorf("somekey = %q", v)
	}
}

func BenchmarkSessionGet(b *testing.B) {
	store := New()
	store.Put("user:12345", `{"name":"George"}`)
	s := NewSession(store, 0)
	buf := make([]byte, 0, 256)
	line := []byte("GET user:12345\r\n")
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.ExecuteLine(buf[:0], line)
	}
}

func BenchmarkSessionPut(b *testing.B) {
	s := NewSession(New(), 0)
	buf := make([]byte, 0, 256)
	line := []byte(`PUT user:12345 {"name":"George"}` + "\r\n")
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.ExecuteLine(buf[:0], line)
	}
}

// TestSessionOutOfMemory fills a store with a small limit over the session:
// PUT and a transaction's PUT are refused with an Error whose mesg starts
// with "out of memory"; GET and DEL keep working, and after DEL, PUT works
// again.
func TestSessionOutOfMemory(t *testing.T) {
	store := New(WithMaxMemory(256 << 10))
	s := NewSession(store, 0)
	val := strings.Repeat("v", 200)
	n := 0
	for ; ; n++ {
		resp := sessionRun(t, s, "PUT k"+strconv.Itoa(n)+" "+val)[0]
		if resp != respOK {
			if !strings.HasPrefix(resp, `{"status":"Error","mesg":"out of memory`) {
				t.Fatalf("PUT over the limit: %s", resp)
			}
			break
		}
	}
	// The refused PUT may leave a little room (it also needed room for its
	// shard's table to grow): the transaction's PUT is far larger.
	big := strings.Repeat("x", 64<<10)
	got := sessionRun(t, s, "GET k0", "START", "PUT x "+big, "GET k1", "DEL k1", "COMMIT", "DEL k2", "DEL k3", "PUT k2 y", "GET k2")
	oom := `{"status":"Error","mesg":"` + mesgOutOfMemory + `"}`
	want := []string{respResult(val), respOK, oom, respResult(val), respOK, respOK, respOK, respOK, respOK, respResult("y")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses over the limit (-want +got):\n%s", diff)
	}
}
