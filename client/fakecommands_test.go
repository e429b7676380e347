package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKeyspace is the state behind a SCRIPTED FAKE kvd (see fakeServer)
// that answers EXPIRE, TTL, PERSIST, KEYS, STATS and AUTH as docs/PROTOCOL.md
// describes them ("Access control and TLS", "STATS", "Expiry and listing"). It checks the exact request lines
// the client sends and its decoding of each answer shape (a page cut
// short, TTL's "-1"). The same commands are tested against the real
// kvstore.Server in access_test.go (AUTH, STATS, TLS), expiry_test.go
// (EXPIRE, TTL, PERSIST), keys_test.go and keys_txn_test.go (KEYS).
type fakeKeyspace struct {
	password string // "" means none

	mu     sync.Mutex
	data   map[string]string
	ttl    map[string]int // seconds left, as TTL answers it
	authed map[int]bool   // per connection
	auths  int            // AUTH requests received
}

func newFakeKeyspace(t *testing.T, password string) (*fakeKeyspace, *fakeServer) {
	k := &fakeKeyspace{password: password, data: map[string]string{}, ttl: map[string]int{}, authed: map[int]bool{}}
	return k, startFake(t, &fakeServer{handle: k.handle})
}

func errLine(mesg string) string {
	b, _ := json.Marshal(mesg)
	return `{"status":"Error","mesg":` + string(b) + "}\n"
}

func resultLine(v any) string {
	b, _ := json.Marshal(v)
	return `{"status":"Ok","result":` + string(b) + "}\n"
}

func (k *fakeKeyspace) handle(conn int, line string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cmd, rest, _ := strings.Cut(line, " ")
	args := strings.Fields(rest)
	switch strings.ToUpper(cmd) {
	case "AUTH":
		k.auths++
		if rest != k.password {
			return errLine("invalid password"), false
		}
		k.authed[conn] = true
		return okLine, false
	case "PING":
		return resultLine("PONG"), false
	}
	if k.password != "" && !k.authed[conn] {
		return errLine("authentication required: send AUTH <password> first"), false
	}
	missing := func(key string) bool { _, ok := k.data[key]; return !ok }
	switch strings.ToUpper(cmd) {
	case "PUT":
		key, val, _ := strings.Cut(rest, " ")
		k.data[key] = val
		delete(k.ttl, key)
		return okLine, false
	case "GET":
		if missing(args[0]) {
			return errLine("key not found: " + args[0]), false
		}
		return resultLine(k.data[args[0]]), false
	case "EXPIRE":
		if len(args) != 2 {
			return errLine("wrong number of arguments for EXPIRE"), false
		}
		if missing(args[0]) {
			return errLine("key not found: " + args[0]), false
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n <= 0 {
			return errLine("invalid time to live"), false
		}
		k.ttl[args[0]] = n
		return okLine, false
	case "TTL":
		if missing(args[0]) {
			return errLine("key not found: " + args[0]), false
		}
		if n, ok := k.ttl[args[0]]; ok {
			return resultLine(strconv.Itoa(n)), false
		}
		return resultLine("-1"), false
	case "PERSIST":
		if missing(args[0]) {
			return errLine("key not found: " + args[0]), false
		}
		delete(k.ttl, args[0])
		return okLine, false
	case "KEYS":
		prefix, ok := strings.CutSuffix(args[0], "*")
		if !ok {
			return errLine("KEYS takes <prefix>*"), false
		}
		limit, after := -1, ""
		if len(args) >= 3 && args[1] == "LIMIT" {
			limit, _ = strconv.Atoi(args[2])
			if len(args) == 5 && args[3] == "AFTER" {
				after = args[4]
			}
		}
		keys := []string{}
		for key := range k.data {
			if strings.HasPrefix(key, prefix) && key > after {
				keys = append(keys, key)
			}
		}
		sort.Strings(keys)
		if limit >= 0 && len(keys) > limit {
			keys = keys[:limit]
		}
		return resultLine(keys), false
	case "STATS":
		return resultLine(map[string]any{"keys": len(k.data), "connections": 1, "commands": 7, "commits": 3, "conflicts": 0, "uptime_seconds": 12, "memory_bytes": 4096}), false
	}
	return errLine(fmt.Sprintf("unknown command %q (try HELP)", cmd)), false
}

// TestExpiryCommandsOnFake: EXPIRE, TTL and PERSIST requests and the
// decoding of their answers, against the scripted fake server.
func TestExpiryCommandsOnFake(t *testing.T) {
	_, f := newFakeKeyspace(t, "")
	ctx := testCtx(t)
	c, err := Dial(ctx, f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if d, err := c.TTL(ctx, "k"); d != 0 || err != nil {
		t.Errorf("TTL without expiry = %v, %v; want 0, nil", d, err)
	}
	if err := c.Expire(ctx, "k", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d, err := c.TTL(ctx, "k"); d != 2*time.Second || err != nil {
		t.Errorf("TTL = %v, %v; want 2s (1.5 s rounded up)", d, err)
	}
	if err := c.Persist(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.TTL(ctx, "k"); d != 0 {
		t.Errorf("TTL after Persist = %v", d)
	}
	for _, err := range []error{
		c.Expire(ctx, "nope", time.Second),
		c.Persist(ctx, "nope"),
		func() error { _, err := c.TTL(ctx, "nope"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("missing key: %v; want ErrNotFound", err)
		}
	}
	if err := c.Expire(ctx, "k", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Expire(0) = %v; want ErrInvalidArgument", err)
	}
	want := []string{"PUT k v", "TTL k", "EXPIRE k 2", "TTL k", "PERSIST k", "TTL k", "EXPIRE nope 1", "PERSIST nope", "TTL nope"}
	if got := f.received()[1:]; !slices.Equal(got, want) { // after Dial's PING
		t.Errorf("requests sent:\n%q\nwant\n%q", got, want)
	}
}

// TestListingOnFake: KEYS requests, paging and decoding against the
// scripted fake server.
func TestListingOnFake(t *testing.T) {
	_, f := newFakeKeyspace(t, "")
	ctx := testCtx(t)
	c, err := Dial(ctx, f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("user:%02d", i)
		want = append(want, k)
		if err := c.Put(ctx, k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Put(ctx, "other", "x"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Keys(ctx, "user:"); err != nil || !slices.Equal(got, want) {
		t.Errorf("Keys(user:) = %q, %v", got, err)
	}
	if got, err := c.Keys(ctx, ""); err != nil || len(got) != 26 {
		t.Errorf("Keys() = %q, %v; want all 26", got, err)
	}
	if got, err := c.Keys(ctx, "none"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Keys(none) = %#v, %v; want an empty non-nil slice", got, err)
	}
	page, more, err := c.KeysPage(ctx, "user:", "user:09", 5)
	if err != nil || !slices.Equal(page, want[10:15]) || !more {
		t.Errorf("KeysPage after user:09 = %q, %v, %v", page, more, err)
	}
	if page, more, err := c.KeysPage(ctx, "user:", "user:19", 10); err != nil || !slices.Equal(page, want[20:]) || more {
		t.Errorf("last KeysPage = %q, %v, %v", page, more, err)
	}
	var all []string
	for k, err := range c.AllKeys(ctx, "user:", 10) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, k)
	}
	if !slices.Equal(all, want) {
		t.Errorf("AllKeys = %q", all)
	}
	// Early stop sends no more pages.
	before := len(f.received())
	for range c.AllKeys(ctx, "user:", 10) {
		break
	}
	if n := len(f.received()) - before; n != 1 {
		t.Errorf("breaking out after the first key sent %d requests; want 1", n)
	}
	reqs := f.received()
	for _, want := range []string{"KEYS user:*", "KEYS *", "KEYS user:* LIMIT 5 AFTER user:09", "KEYS user:* LIMIT 10", "KEYS user:* LIMIT 10 AFTER user:19"} {
		if !slices.Contains(reqs, want) {
			t.Errorf("no request %q among %q", want, reqs)
		}
	}
	if _, err := c.Keys(ctx, "a*"); err != nil || !slices.Contains(f.received(), "KEYS a**") {
		t.Errorf("Keys(a*) = %v; want the literal prefix a* sent as KEYS a**", err)
	}
	if _, err := c.Keys(ctx, "a b"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Keys(a b) = %v", err)
	}
	if _, _, err := c.KeysPage(ctx, "a", "", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("KeysPage limit 0 = %v", err)
	}
}

// TestAuthOnFake: with WithPassword every new connection authenticates
// first; a wrong password fails Dial; no password gets ErrAuthRequired.
// (Scripted fake server: it counts AUTH requests; TestAuth runs against the
// real one.)
func TestAuthOnFake(t *testing.T) {
	k, f := newFakeKeyspace(t, "s3cret pass")
	ctx := testCtx(t)
	c, err := Dial(ctx, f.addr(), WithPassword("s3cret pass"), WithPoolSize(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if err := c.Put(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Update(ctx, func(tx *Txn) error { return nil }); err != nil && !errors.Is(err, ErrUnknownCommand) {
		t.Fatal(err)
	}
	k.mu.Lock()
	auths := k.auths
	k.mu.Unlock()
	if conns := f.connCount(); auths != conns || conns != 4 {
		t.Errorf("%d AUTH requests on %d connections; want one per connection, 4", auths, conns)
	}
	if _, err := Dial(ctx, f.addr(), WithPassword("wrong")); !errors.Is(err, ErrInvalidPassword) {
		t.Errorf("Dial with a wrong password = %v; want ErrInvalidPassword", err)
	}
	c2, err := Dial(ctx, f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Put(ctx, "k", "v"); !errors.Is(err, ErrAuthRequired) {
		t.Errorf("Put without a password = %v; want ErrAuthRequired", err)
	}
	if _, err := Dial(ctx, f.addr(), WithPassword(" leading space")); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("Dial with an unsendable password = %v; want ErrInvalidValue", err)
	}
}

func TestStatsOnFake(t *testing.T) {
	_, f := newFakeKeyspace(t, "")
	ctx := testCtx(t)
	c, err := Dial(ctx, f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Put(ctx, "a", "1")
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keys", "connections", "commands", "commits", "conflicts", "uptime_seconds"} {
		if _, ok := st[name]; !ok {
			t.Errorf("Stats has no %q: %v", name, st)
		}
	}
	if st["keys"] != 1 {
		t.Errorf("keys = %v", st["keys"])
	}
}

// TestKeysPageCutShort: a page the server cut at its size limit (fewer
// keys than LIMIT, with a mesg saying so) is not the last; AllKeys goes
// on. (Scripted fake server, in the shape of kvd's answer.)
func TestKeysPageCutShort(t *testing.T) {
	f := startFake(t, &fakeServer{handle: func(conn int, line string) (string, bool) {
		switch line {
		case "KEYS p* LIMIT 3":
			return `{"status":"Ok","result":["p1"],"mesg":"page cut at the size limit: continue with AFTER the last key"}` + "\n", false
		case "KEYS p* LIMIT 3 AFTER p1":
			return `{"status":"Ok","result":["p2","p3"]}` + "\n", false
		case "KEYS p*":
			return `{"status":"Error","mesg":"too many keys to list at once: page with KEYS <pattern> LIMIT <n> [AFTER <last key of the previous page>]"}` + "\n", false
		}
		return okHandler(conn, line)
	}})
	ctx := testCtx(t)
	c, err := Dial(ctx, f.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	for k, err := range c.AllKeys(ctx, "p", 3) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if !slices.Equal(got, []string{"p1", "p2", "p3"}) {
		t.Errorf("AllKeys = %q", got)
	}
	if _, err := c.Keys(ctx, "p"); !errors.Is(err, ErrTooManyKeys) {
		t.Errorf("Keys over the bound = %v; want ErrTooManyKeys", err)
	}
}
