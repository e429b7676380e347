package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestKVDRequests(t *testing.T) {
	p := kvdProto{}
	if got := string(p.appendGet(nil, []byte("key:1"))); got != "GET key:1\n" {
		t.Errorf("GET = %q", got)
	}
	if got := string(p.appendPut([]byte("x"), []byte("k"), []byte("v v "))); got != "xPUT k v v \n" {
		t.Errorf("PUT = %q", got)
	}
	b, exp := p.appendTxn(nil, nil, [][]byte{[]byte("a"), []byte("b")}, []byte("val"))
	want := "START\nGET a\nGET b\nPUT a val\nPUT b val\nCOMMIT\n"
	if string(b) != want {
		t.Errorf("txn = %q, want %q", b, want)
	}
	wantExp := []expect{expectOK, expectGet, expectGet, expectOK, expectOK, expectCommit}
	if !equalExpects(exp, wantExp) {
		t.Errorf("txn expectations = %v, want %v", exp, wantExp)
	}
}

func TestRESPRequests(t *testing.T) {
	p := respProto{}
	if got := string(p.appendGet(nil, []byte("key:1"))); got != "*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n" {
		t.Errorf("GET = %q", got)
	}
	if got := string(p.appendPut(nil, []byte("k"), []byte(""))); got != "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n" {
		t.Errorf("SET = %q", got)
	}
	b, exp := p.appendTxn(nil, nil, [][]byte{[]byte("a"), []byte("bb")}, []byte("v"))
	want := "*3\r\n$5\r\nWATCH\r\n$1\r\na\r\n$2\r\nbb\r\n" +
		"*2\r\n$3\r\nGET\r\n$1\r\na\r\n" +
		"*2\r\n$3\r\nGET\r\n$2\r\nbb\r\n" +
		"*1\r\n$5\r\nMULTI\r\n" +
		"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nv\r\n" +
		"*3\r\n$3\r\nSET\r\n$2\r\nbb\r\n$1\r\nv\r\n" +
		"*1\r\n$4\r\nEXEC\r\n"
	if string(b) != want {
		t.Errorf("txn = %q, want %q", b, want)
	}
	wantExp := []expect{expectOK, expectGet, expectGet, expectOK, expectOK, expectOK, expectCommit}
	if !equalExpects(exp, wantExp) {
		t.Errorf("txn expectations = %v, want %v", exp, wantExp)
	}
}

func equalExpects(a, b []expect) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type replyCase struct {
	rep reply
	msg string
}

// readAll reads replies from input until EOF.
func readAll(t *testing.T, p protocol, input string, bufSize int) []replyCase {
	t.Helper()
	r := bufio.NewReaderSize(strings.NewReader(input), bufSize)
	var out []replyCase
	for {
		rep, msg, err := p.readReply(r)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("readReply after %d replies: %v", len(out), err)
		}
		out = append(out, replyCase{rep, string(msg)})
	}
}

func TestKVDReplies(t *testing.T) {
	big := strings.Repeat("x", 5000)
	input := `{"status":"Ok"}` + "\n" +
		`{"status":"Ok","result":"1"}` + "\n" +
		`{"status":"Ok","result":""}` + "\r\n" +
		`{"status":"Error","mesg":"key not found: nobody"}` + "\n" +
		`{"status":"Error","mesg":"transaction conflict on key a"}` + "\n" +
		`{"status":"Error","mesg":"Conflict: aborted"}` + "\n" +
		`{"status":"Error","mesg":"no transaction"}` + "\n" +
		`{"status":"Ok","mesg":"Bye"}` + "\n" +
		`{"status":"Ok","result":"` + big + `"}` + "\n" + // longer than the reader's buffer
		`{"status":"Ok"}` + "\n" +
		`not json at all` + "\n"
	want := []replyCase{
		{replyOK, ""},
		{replyValue, ""},
		{replyValue, ""},
		{replyMiss, `{"status":"Error","mesg":"key not found: nobody"}`},
		{replyConflict, `{"status":"Error","mesg":"transaction conflict on key a"}`},
		{replyConflict, `{"status":"Error","mesg":"Conflict: aborted"}`},
		{replyError, `{"status":"Error","mesg":"no transaction"}`},
		{replyOK, ""},
		{replyValue, ""},
		{replyOK, ""},
		{replyError, "not json at all"},
	}
	got := readAll(t, kvdProto{}, input, 256)
	if len(got) != len(want) {
		t.Fatalf("got %d replies %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reply %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestKVDTruncatedReply(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader(`{"status":"Ok","result":"`+strings.Repeat("y", 600)), 64)
	if _, _, err := (kvdProto{}).readReply(r); err == nil {
		t.Fatal("a reply cut off by EOF should be an error")
	}
}

func TestRESPReplies(t *testing.T) {
	big := strings.Repeat("z", 3000)
	input := "+OK\r\n" +
		"+QUEUED\r\n" +
		":42\r\n" +
		"-ERR unknown command\r\n" +
		"$5\r\nhello\r\n" +
		"$0\r\n\r\n" +
		"$-1\r\n" +
		"$3000\r\n" + big + "\r\n" + // longer than the reader's buffer
		"*-1\r\n" + // EXEC aborted by WATCH
		"*2\r\n+OK\r\n+OK\r\n" + // EXEC results
		"*2\r\n+OK\r\n-WRONGTYPE bad\r\n" + // EXEC with a failed command
		"*0\r\n" +
		"*1\r\n*2\r\n$1\r\na\r\n$-1\r\n" // nested
	want := []replyCase{
		{replyOK, ""},
		{replyOK, ""},
		{replyOK, ""},
		{replyError, "ERR unknown command"},
		{replyValue, ""},
		{replyValue, ""},
		{replyMiss, ""},
		{replyValue, ""},
		{replyConflict, ""},
		{replyOK, ""},
		{replyError, ""},
		{replyOK, ""},
		{replyOK, ""},
	}
	got := readAll(t, respProto{}, input, 128)
	if len(got) != len(want) {
		t.Fatalf("got %d replies %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reply %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestRESPMalformed(t *testing.T) {
	for _, in := range []string{"?what\r\n", "+OK\n", "$abc\r\n", "*x\r\n", "$5\r\nab"} {
		r := bufio.NewReader(strings.NewReader(in))
		_, _, err := (respProto{}).readReply(r)
		if err == nil {
			t.Errorf("%q: no error", in)
		}
		if in != "$5\r\nab" && !errors.Is(err, errRESP) {
			t.Errorf("%q: error %v, want errRESP", in, err)
		}
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "7": 7, "123456": 123456, "-1": -1} {
		if got, ok := parseInt([]byte(in)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "1a", " 1", "99999999999999999999"} {
		if _, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) accepted", in)
		}
	}
}

func TestJudge(t *testing.T) {
	cases := []struct {
		e    expect
		r    reply
		want outcome
	}{
		{expectGet, replyValue, outOK},
		{expectGet, replyMiss, outMiss},
		{expectGet, replyOK, outError},
		{expectGet, replyError, outError},
		{expectOK, replyOK, outOK},
		{expectOK, replyMiss, outError},
		{expectOK, replyConflict, outError},
		{expectCommit, replyOK, outOK},
		{expectCommit, replyConflict, outConflict},
		{expectCommit, replyError, outError},
	}
	for _, c := range cases {
		if got := judge(c.e, c.r); got != c.want {
			t.Errorf("judge(%v, %v) = %v, want %v", c.e, c.r, got, c.want)
		}
	}
}

func TestProtocolByName(t *testing.T) {
	for _, n := range []string{"kvd", "resp"} {
		p, err := protocolByName(n)
		if err != nil || p.name() != n {
			t.Errorf("protocolByName(%q) = %v, %v", n, p, err)
		}
	}
	if _, err := protocolByName("http"); err == nil {
		t.Error("unknown protocol accepted")
	}
}
