package kvstore

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestServerExpiryCommands(t *testing.T) { eachBackend(t, testServerExpiryCommands) }

func testServerExpiryCommands(t *testing.T, backend Option) {
	ts := startServer(t, backend)
	c := ts.dial(t)
	got := c.do(
		"PUT k v",
		"TTL k",
		"EXPIRE k 100",
		"TTL k",
		"PERSIST k",
		"TTL k",
		"EXPIRE k 50",
		"PUT k w", // PUT clears the time to live
		"TTL k",
		"EXPIRE nobody 10",
		"TTL nobody",
		"PERSIST nobody",
		"EXPIRE k 0",
		"EXPIRE k 1.5",
		"EXPIRE k",
		"TTL",
		"START",
		"EXPIRE k 30",
		"TTL k",
		"ROLLBACK",
		"TTL k",
		"EXPIRE k 3000000000", // the longest: TTL answers what was set
		"TTL k",
		"EXPIRE k 3000000001",
		"PERSIST k", // no key keeps active expiry running
	)
	want := []string{
		respOK,
		`{"status":"Ok","result":"-1"}`,
		respOK,
		`{"status":"Ok","result":"100"}`,
		respOK,
		`{"status":"Ok","result":"-1"}`,
		respOK,
		respOK,
		`{"status":"Ok","result":"-1"}`,
		respErr("key not found: nobody"),
		respErr("key not found: nobody"),
		respErr("key not found: nobody"),
		respErr("invalid argument: seconds must be an integer from 1 to 3000000000"),
		respErr("invalid argument: seconds must be an integer from 1 to 3000000000"),
		respErr("wrong number of arguments for EXPIRE: usage: EXPIRE <key> <seconds>"),
		respErr("wrong number of arguments for TTL: usage: TTL <key>"),
		respOK,
		respOK,
		`{"status":"Ok","result":"30"}`,
		respOK,
		`{"status":"Ok","result":"-1"}`,
		respOK,
		`{"status":"Ok","result":"3000000000"}`,
		respErr("invalid argument: seconds must be an integer from 1 to 3000000000"),
		respOK,
	}
	// TTL rounds up: right after EXPIRE 100 it is 100 (99.99... s left).
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}

	// A key expires on its own, with the real clock.
	c.do("PUT short v", "EXPIRE short 1")
	start := time.Now()
	for c.do("GET short")[0] != respErr("key not found: short") {
		if time.Since(start) > 10*time.Second {
			t.Fatal("key with EXPIRE 1 still there after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.do("TTL short", "KEYS short*"); got[0] != respErr("key not found: short") || got[1] != `{"status":"Ok","result":[]}` {
		t.Fatalf("after expiry: %v", got)
	}
}

func TestServerKeysCommand(t *testing.T) { eachBackend(t, testServerKeysCommand) }

func testServerKeysCommand(t *testing.T, backend Option) {
	ts := startServer(t, backend)
	c := ts.dial(t)
	got := c.do(
		"KEYS *",
		"PUT b 1",
		"PUT a 1",
		`PUT a"q 1`,
		"PUT ab 1",
		"PUT c 1",
		"KEYS *",
		"KEYS a*",
		"KEYS a* LIMIT 1",
		"KEYS a* LIMIT 1 AFTER a",
		`KEYS a* limit 5 after a"q`,
		"KEYS a",
		"KEYS a* LIMIT 0",
		"KEYS a* LIMIT 10001",
		"KEYS a* AFTER a",
		"KEYS a* LIMIT 2 BEFORE a",
	)
	want := []string{
		`{"status":"Ok","result":[]}`,
		respOK, respOK, respOK, respOK, respOK,
		`{"status":"Ok","result":["a","a\"q","ab","b","c"]}`,
		`{"status":"Ok","result":["a","a\"q","ab"]}`,
		`{"status":"Ok","result":["a"]}`,
		`{"status":"Ok","result":["a\"q"]}`,
		`{"status":"Ok","result":["ab"]}`,
		respErr("invalid argument: the pattern must be * or <prefix>* (a literal prefix, then one *)"),
		respErr("invalid argument: LIMIT must be an integer from 1 to 10000"),
		respErr("invalid argument: LIMIT must be an integer from 1 to 10000"),
		respErr("wrong number of arguments for KEYS: usage: KEYS <prefix>* [LIMIT <n> [AFTER <key>]]"),
		respErr("wrong number of arguments for KEYS: usage: KEYS <prefix>* [LIMIT <n> [AFTER <key>]]"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}

	// Beyond MaxUnpagedKeys, an unpaged listing is an error; pages list
	// everything.
	for i := 0; i < MaxUnpagedKeys+1; i++ {
		c.send(fmt.Sprintf("PUT many:%05d v\n", i))
	}
	for i := 0; i < MaxUnpagedKeys+1; i++ {
		if r := c.recv(); r != respOK {
			t.Fatalf("PUT: %s", r)
		}
	}
	if r := c.do("KEYS many:*")[0]; r != respErr(mesgTooManyKeys) {
		t.Fatalf("unpaged KEYS of %d keys = %.200s", MaxUnpagedKeys+1, r)
	}
	var all []string
	after := ""
	for {
		req := "KEYS many:* LIMIT 300"
		if after != "" {
			req += " AFTER " + after
		}
		resp, err := ParseResponse([]byte(c.do(req)[0]))
		if err != nil || !resp.IsList || resp.Mesg != "" {
			t.Fatalf("%s: %+v, %v", req, resp, err)
		}
		all = append(all, resp.List...)
		if len(resp.List) < 300 {
			break
		}
		after = resp.List[len(resp.List)-1]
	}
	if len(all) != MaxUnpagedKeys+1 || all[0] != "many:00000" || all[len(all)-1] != "many:"+fmt.Sprintf("%05d", MaxUnpagedKeys) {
		t.Fatalf("paged listing: %d keys", len(all))
	}
}

func TestServerKeysByteBound(t *testing.T) {
	ts := startServer(t)
	c := ts.dial(t)
	long := strings.Repeat("x", 100<<10) // 100 KiB keys: 11 exceed 1 MiB
	for i := 0; i < 12; i++ {
		if r := c.do("PUT big" + strconv.Itoa(10+i) + long + " v")[0]; r != respOK {
			t.Fatal(r)
		}
	}
	if r := c.do("KEYS big*")[0]; r != respErr(mesgTooManyKeys) {
		t.Fatalf("unpaged KEYS over %d bytes = %.100s", MaxKeysBytes, r)
	}
	resp, err := ParseResponse([]byte(c.do("KEYS big* LIMIT 100")[0]))
	if err != nil || len(resp.List) != 10 || resp.Mesg != mesgPageCut {
		t.Fatalf("page over the byte bound: %d keys, mesg %q, %v", len(resp.List), resp.Mesg, err)
	}
}

// TestServerKeysPhantom is the phantom anomaly over the wire: two clients
// each count a prefix in a transaction and insert under it.
func TestServerKeysPhantom(t *testing.T) { eachBackend(t, testServerKeysPhantom) }

func testServerKeysPhantom(t *testing.T, backend Option) {
	ts := startServer(t, backend)
	a, b := ts.dial(t), ts.dial(t)
	a.do("PUT oncall:alice 1", "PUT oncall:bob 1")
	ra := a.do("START", "KEYS oncall:*")
	rb := b.do("START", "KEYS oncall:*")
	if ra[1] != `{"status":"Ok","result":["oncall:alice","oncall:bob"]}` || rb[1] != ra[1] {
		t.Fatalf("listings: %v %v", ra, rb)
	}
	if r := a.do("DEL oncall:alice", "COMMIT"); r[1] != respOK {
		t.Fatalf("first commit: %v", r)
	}
	if r := b.do("DEL oncall:bob", "COMMIT"); r[1] != respErr(mesgConflict) {
		t.Fatalf("second commit: %v, want a conflict", r)
	}
	if r := a.do("KEYS oncall:*")[0]; r != `{"status":"Ok","result":["oncall:bob"]}` {
		t.Fatalf("after: %s", r)
	}
}
