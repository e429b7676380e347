package kvstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds for these targets live in testdata/fuzz/<FuzzName>/; run one with
// e.g. go test -run XXX -fuzz FuzzSession -fuzztime 30s .

// FuzzParseRequest checks that the parser never panics, that whatever it
// accepts is well-formed and survives a round trip through Request.String,
// and that every rejection is one of the documented errors.
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := ParseRequest(line)
		if err != nil {
			for _, s := range []error{ErrEmptyRequest, ErrUnknownCommand, ErrWrongArguments, ErrInvalidKey, ErrInvalidUTF8, ErrInvalidValue, ErrInvalidArgument} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("ParseRequest(%q): undocumented error %v", line, err)
		}
		if verr := req.Validate(); verr != nil {
			t.Fatalf("ParseRequest(%q) = %+v, which does not validate: %v", line, req, verr)
		}
		switch req.Cmd {
		case CmdPut:
			if req.Value == nil {
				t.Fatalf("PUT without a value: %q", line)
			}
		case CmdGet, CmdDel, CmdTTL, CmdPersist:
		case CmdExpire:
			if req.Seconds < 1 || req.Seconds > MaxExpireSeconds {
				t.Fatalf("EXPIRE with %d seconds: %q", req.Seconds, line)
			}
		case CmdKeys:
			if len(req.Key) == 0 || req.Key[len(req.Key)-1] != '*' || req.Limit < 0 || req.Limit > MaxKeysLimit || (req.After != nil && req.Limit == 0) {
				t.Fatalf("bad KEYS request %+v from %q", req, line)
			}
		default:
			if req.Key != nil || req.Value != nil {
				t.Fatalf("%v with arguments: %q", req.Cmd, line)
			}
		}
		back, err := ParseRequest([]byte(req.String() + "\r\n"))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", req.String(), err)
		}
		if back.Cmd != req.Cmd || !bytes.Equal(back.Key, req.Key) || !bytes.Equal(back.Value, req.Value) ||
			back.Seconds != req.Seconds || back.Limit != req.Limit || !bytes.Equal(back.After, req.After) {
			t.Fatalf("round trip of %q: %+v != %+v", line, back, req)
		}
	})
}

// FuzzAppendResponse checks that the encoder's output is always valid JSON,
// byte for byte what encoding/json produces (HTML escaping off), and that it
// decodes back to the same strings when they are valid UTF-8.
func FuzzAppendResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, result, mesg string, isErr, hasResult bool) {
		r := Response{Result: result, HasResult: hasResult, Mesg: mesg}
		if isErr {
			r.Status = StatusError
		}
		if !hasResult {
			r.Result = ""
		}
		got := AppendResponse([]byte("prefix"), r)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatal("AppendResponse clobbered dst")
		}
		got = got[len("prefix"):]
		if n := bytes.IndexByte(got, '\n'); n != len(got)-1 {
			t.Fatalf("not exactly one line: %q", got)
		}
		if !json.Valid(got) {
			t.Fatalf("invalid JSON: %q", got)
		}
		if want := referenceResponse(t, r); string(got) != want {
			t.Fatalf("AppendResponse = %q, encoding/json gives %q", got, want)
		}
		back, err := ParseResponse(got)
		if err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(result) && utf8.ValidString(mesg) && !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip: %+v != %+v", back, r)
		}
	})
}

// sessionModel is the obvious sequential model of one client: a map, and a
// stack of overlay maps for the open transaction levels (a nil value is a
// delete). The clock stands still, so a time to live never runs out and
// TTL answers exactly what EXPIRE set.
type sessionModel struct {
	base     map[string]mval
	levels   []map[string]*mval
	maxDepth int
	password string // required by AUTH; "" for none
	authed   bool
}

// statsMarker is the Result sessionModel.expect gives for STATS, whose
// figures it does not model: the fuzzer checks the shape instead.
const statsMarker = "\x00stats"

// mval is a value with its time to live in seconds (0: none).
type mval struct {
	v   string
	ttl int64
}

func (m *sessionModel) getTTL(k string) (mval, bool) {
	for i := len(m.levels) - 1; i >= 0; i-- {
		if v, ok := m.levels[i][k]; ok {
			if v == nil {
				return mval{}, false
			}
			return *v, true
		}
	}
	v, ok := m.base[k]
	return v, ok
}

func (m *sessionModel) get(k string) (string, bool) {
	v, ok := m.getTTL(k)
	return v.v, ok
}

func (m *sessionModel) set(k string, v *mval) {
	if n := len(m.levels); n > 0 {
		m.levels[n-1][k] = v
		return
	}
	if v == nil {
		delete(m.base, k)
	} else {
		m.base[k] = *v
	}
}

// keys returns the keys the model holds, as the session sees them, sorted.
func (m *sessionModel) keys() []string {
	all := map[string]bool{}
	for k := range m.base {
		all[k] = true
	}
	for _, l := range m.levels {
		for k := range l {
			all[k] = true
		}
	}
	var out []string
	for k := range all {
		if _, ok := m.get(k); ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// expect returns the response the model gives to line.
func (m *sessionModel) expect(line []byte) Response {
	req, err := ParseRequest(line)
	if err != nil {
		return Response{Status: StatusError, Mesg: err.Error()}
	}
	errResp := func(mesg string) Response { return Response{Status: StatusError, Mesg: mesg} }
	if m.password != "" && !m.authed {
		switch req.Cmd {
		case CmdAuth, CmdPing, CmdHelp, CmdExit:
		default:
			return errResp(mesgAuthNeeded)
		}
	}
	key := string(req.Key)
	switch req.Cmd {
	case CmdAuth:
		switch {
		case m.password == "":
			return errResp(mesgNoPassword)
		case string(req.Value) != m.password:
			return errResp(mesgBadPassword)
		}
		m.authed = true
	case CmdStats:
		return Response{Result: statsMarker, HasResult: true}
	case CmdPut:
		m.set(key, &mval{v: string(req.Value)})
	case CmdExpire, CmdPersist:
		v, ok := m.getTTL(key)
		if !ok {
			return errResp(mesgKeyNotFound + key)
		}
		if req.Cmd == CmdPersist && v.ttl == 0 {
			break
		}
		v.ttl = req.Seconds
		m.set(key, &v)
	case CmdTTL:
		v, ok := m.getTTL(key)
		if !ok {
			return errResp(mesgKeyNotFound + key)
		}
		if v.ttl == 0 {
			return Response{Result: "-1", HasResult: true}
		}
		return Response{Result: strconv.FormatInt(v.ttl, 10), HasResult: true}
	case CmdKeys:
		prefix, after := string(req.KeysPrefix()), string(req.After)
		list := []string{}
		for _, k := range m.keys() {
			if strings.HasPrefix(k, prefix) && (req.After == nil || k > after) {
				list = append(list, k)
			}
		}
		switch {
		case req.Limit == 0 && len(list) > MaxUnpagedKeys:
			return errResp(mesgTooManyKeys)
		case req.Limit != 0 && len(list) > req.Limit:
			list = list[:req.Limit]
		}
		return Response{HasResult: true, IsList: true, List: list}
	case CmdGet:
		v, ok := m.get(key)
		if !ok {
			return errResp(mesgKeyNotFound + key)
		}
		return Response{Result: v, HasResult: true}
	case CmdDel:
		if _, ok := m.get(key); !ok {
			return errResp(mesgKeyNotFound + key)
		}
		m.set(key, nil)
	case CmdStart:
		if len(m.levels) >= m.maxDepth {
			return errResp(mesgTooDeep + strconv.Itoa(m.maxDepth) + " levels")
		}
		m.levels = append(m.levels, map[string]*mval{})
	case CmdCommit, CmdRollback:
		n := len(m.levels)
		if n == 0 {
			return errResp(mesgNoTxn)
		}
		top := m.levels[n-1]
		m.levels = m.levels[:n-1]
		if req.Cmd == CmdCommit {
			for k, v := range top {
				m.set(k, v)
			}
		}
	case CmdPing:
		return Response{Result: "PONG", HasResult: true}
	case CmdHelp:
		return Response{Result: helpText, HasResult: true}
	case CmdExit:
		return Response{Mesg: "Bye"}
	}
	return Response{}
}

// FuzzSession runs a stream of request lines through a Session on a real
// Store and through sessionModel, and compares every response and, at the
// end (after Close rolls back what is still open), the store's contents.
func FuzzSession(f *testing.F) {
	f.Add([]byte("PUT a 1\nSTATS\nAUTH x\nGET a"))
	f.Fuzz(func(t *testing.T, stream []byte) { fuzzSession(t, stream, "") })
}

// FuzzAuthSession is FuzzSession on a Session that requires a password:
// before a correct AUTH nothing but AUTH, PING, HELP and EXIT may run, and
// nothing changes the store. TestAuthFuzzCatchesBrokenAuth shows it
// failing on deliberately broken access checks.
func FuzzAuthSession(f *testing.F) {
	for _, seed := range authSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stream []byte) { fuzzSession(t, stream, authPassword) })
}

// authPassword is the password of FuzzAuthSession's sessions.
const authPassword = "s3cret pw"

// authSeeds is FuzzAuthSession's seed corpus.
var authSeeds = []string{
	"PUT a 1\nAUTH wrong\nGET a\nauth  s3cret pw\nPUT a 2\nGET a",
	"STATS\nSTART\nAUTH s3cret pw \nAUTH s3cret pw\nSTATS\nDEL a",
	"AUTH\nAUTH \nHELP\nPING\nAUTH s3cret pw\r\nSTART\nPUT x y\nCOMMIT",
	"AUTH s3cret\nPUT a 1\nAUTH s3cret pw\nGET a", // a prefix of the password
}

// fuzzSession runs stream through a Session and sessionModel with password
// required ("" for none), and fails t at the first difference.
func fuzzSession(t *testing.T, stream []byte, password string) {
	if err := checkSession(stream, password, authCorrect); err != nil {
		t.Fatal(err)
	}
}

// checkSession runs stream through a Session (with the access check bug
// selects) and sessionModel, and returns the first difference.
func checkSession(stream []byte, password string, bug authBugMode) error {
	{
		frozen := time.Unix(1_700_000_000, 0)
		store := New(WithClock(func() time.Time { return frozen }))
		defer store.Close()
		s := NewSession(store, 3)
		s.RequirePassword(password)
		s.authBug, s.clearPassword = bug, password
		m := &sessionModel{base: map[string]mval{}, maxDepth: 3, password: password}
		keys := map[string]bool{}
		var out []byte
		for _, line := range bytes.Split(stream, []byte("\n")) {
			if req, err := ParseRequest(line); err == nil && req.Key != nil {
				keys[string(req.Key)] = true
			}
			wantResp := m.expect(line)
			want := AppendResponse(nil, wantResp)
			// A fresh copy of the line, clobbered afterwards, catches a
			// Session that keeps a view of its input.
			buf := append([]byte(nil), line...)
			out, _ = s.ExecuteLine(out[:0], buf)
			for i := range buf {
				buf[i] = 0
			}
			if wantResp.Result == statsMarker {
				var st struct {
					Status string
					Result map[string]float64
				}
				if err := json.Unmarshal(out, &st); err != nil || st.Status != "Ok" || st.Result["keys"] != float64(store.Len()) {
					return fmt.Errorf("%q: got %q (%v), want the stats of %d keys", line, out, err, store.Len())
				}
			} else if !bytes.Equal(out, want) {
				return fmt.Errorf("%q: got %q, model says %q", line, out, want)
			}
			if s.Depth() != len(m.levels) {
				return fmt.Errorf("%q: depth %d, model %d", line, s.Depth(), len(m.levels))
			}
		}
		s.Close()
		for k := range keys {
			got, gok := store.Get(k)
			want, wok := m.base[k]
			if got != want.v || gok != wok {
				return fmt.Errorf("after Close, store %q = %q,%v; model %q,%v", k, got, gok, want.v, wok)
			}
			if ttl, _ := store.TTL(k); ttl != time.Duration(want.ttl)*time.Second {
				return fmt.Errorf("after Close, store TTL(%q) = %v; model %ds", k, ttl, want.ttl)
			}
		}
		if store.Len() != len(m.base) {
			return fmt.Errorf("store has %d keys, model %d", store.Len(), len(m.base))
		}
	}
	return nil
}

// TestAuthFuzzCatchesBrokenAuth shows FuzzAuthSession's checker failing on
// deliberately broken access checks (see authBugMode): a session that lets
// one request through before AUTH, and one that accepts any prefix of the
// password (a hand-written comparison that stops at the shorter input, as
// a non-constant-time one typically does). Each is run on the seed corpus
// and on 500 random streams of requests, the way the fuzzer feeds them;
// the correct session passes them all, and each broken one must fail some.
func TestAuthFuzzCatchesBrokenAuth(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	lines := []string{"PUT a 1", "GET a", "DEL a", "START", "COMMIT", "PING", "STATS",
		"AUTH s3cret pw", "AUTH s3cret", "AUTH s3", "AUTH ", "AUTH wrong", "AUTH s3cret pw ", "AUTH S3cret pw"}
	streams := slices.Clone(authSeeds)
	for range 500 {
		var b strings.Builder
		for i := range 1 + rng.IntN(6) {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(lines[rng.IntN(len(lines))])
		}
		streams = append(streams, b.String())
	}
	for _, stream := range streams {
		if err := checkSession([]byte(stream), authPassword, authCorrect); err != nil {
			t.Fatalf("the correct session fails on %q: %v", stream, err)
		}
	}
	for _, bug := range []struct {
		name string
		mode authBugMode
	}{{"one request let through before AUTH", authBugOneFree}, {"prefix comparison", authBugPrefix}} {
		caught, seeds := 0, 0
		var example error
		for i, stream := range streams {
			if err := checkSession([]byte(stream), authPassword, bug.mode); err != nil {
				caught++
				if i < len(authSeeds) {
					seeds++
				}
				if example == nil {
					example = err
				}
			}
		}
		if caught == 0 {
			t.Errorf("%s: not caught by any of %d streams", bug.name, len(streams))
			continue
		}
		t.Logf("%s: caught by %d of %d streams (%d of %d seeds), e.g. %v", bug.name, caught, len(streams), seeds, len(authSeeds), example)
	}
}
