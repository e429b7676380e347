package client

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestParseResponse(t *testing.T) {
	cases := []struct {
		line string
		want response
	}{
		{`{"status":"Ok"}`, response{ok: true}},
		{"{\"status\":\"Ok\"}\r\n", response{ok: true}},
		{`{"status":"Ok","result":""}`, response{ok: true, hasResult: true}},
		{`{"status":"Ok","result":"v"}` + "\n", response{ok: true, hasResult: true, result: "v"}},
		{`{"status":"Ok","result":"<a&b> é ☃"}`, response{ok: true, hasResult: true, result: "<a&b> é ☃"}},
		{`{"status":"Ok","result":"a\"b\\c\n\u0001\u2028"}`, response{ok: true, hasResult: true, result: "a\"b\\c\n\x01\u2028"}},
		{`{"status":"Ok","mesg":"Bye"}`, response{ok: true, mesg: "Bye"}},
		{`{"status":"Error","mesg":"key not found: k"}`, response{mesg: "key not found: k"}},
		{`{"status":"Ok","result":["a","b"]}`, response{ok: true, hasResult: true, raw: []byte(`["a","b"]`)}},
		{`{"status":"Ok","result":{"keys":3}}`, response{ok: true, hasResult: true, raw: []byte(`{"keys":3}`)}},
		{`{"status":"Ok","result":null}`, response{ok: true}},
		{`{"status":"Ok","future":1}`, response{ok: true}},
		{` { "mesg" : "m" , "status" : "Error" } `, response{mesg: "m"}},
	}
	for _, c := range cases {
		got, err := parseResponse([]byte(c.line))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseResponse(%q) = %+v, %v; want %+v", c.line, got, err, c.want)
		}
	}
	bad := []string{
		``, "\n", `{`, `{"status":"Ok"`, `{"status":"ok"}`, `{"result":"x"}`, `{"status":1}`,
		`{"status":"Ok","mesg":5}`, `{"status":"Ok","result":"\x"}`, `{"status":"Ok"} x`,
		`{"status":"Ok","result":"}`, `HTTP/1.1 400 Bad Request`, `+OK`,
	}
	for _, line := range bad {
		if r, err := parseResponse([]byte(line)); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseResponse(%q) = %+v, %v; want ErrProtocol", line, r, err)
		}
	}
}

// FuzzParseResponse: no input makes the parser panic, and its fast paths
// agree with encoding/json on every input.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"status":"Ok"}`, `{"status":"Ok","result":"v"}`, `{"status":"Ok","result":""}`,
		`{"status":"Error","mesg":"conflict"}`, `{"status":"Ok","result":["a"]}`,
		`{"status":"Ok","result":"\u00e9\ud800"}`, "{\"status\":\"Ok\",\"result\":\"\xff\"}",
		`{"status":"Ok","result":"}`, `{"status":"Ok","result":"a"}}`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if err := agreesWithJSON(parseResponse, line); err != nil {
			t.Fatal(err)
		}
	})
}

// agreesWithJSON is the fuzz property: parse gives what encoding/json gives
// for line, and its errors wrap ErrProtocol.
func agreesWithJSON(parse func([]byte) (response, error), line []byte) error {
	got, err := parse(line)
	want, werr := parseResponseJSON(trimEOL(line))
	if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
		return fmt.Errorf("parse(%q) = %+v, %v; encoding/json says %+v, %v", line, got, err, want, werr)
	}
	if err != nil && !errors.Is(err, ErrProtocol) {
		return fmt.Errorf("error %v does not wrap ErrProtocol", err)
	}
	return nil
}

// TestFuzzPropertyCatchesBrokenParser: the fuzz property rejects a fast
// path that forgets to unescape, on an input of the seed corpus.
func TestFuzzPropertyCatchesBrokenParser(t *testing.T) {
	broken := func(line []byte) (response, error) {
		line = trimEOL(line)
		if bytes.HasPrefix(line, prefixResult) && bytes.HasSuffix(line, suffixResult) && len(line) >= len(prefixResult)+len(suffixResult) {
			return response{ok: true, hasResult: true, result: string(line[len(prefixResult) : len(line)-len(suffixResult)])}, nil
		}
		return parseResponse(line)
	}
	if agreesWithJSON(broken, []byte(`{"status":"Ok","result":"\u00e9\ud800"}`)) == nil {
		t.Fatal("the fuzz property accepted a parser that does not unescape")
	}
	if err := agreesWithJSON(parseResponse, []byte(`{"status":"Ok","result":"\u00e9\ud800"}`)); err != nil {
		t.Fatal(err)
	}
}

func TestServerErrorMatching(t *testing.T) {
	for _, p := range serverPrefixes {
		err := error(&ServerError{Cmd: "X", Mesg: p.prefix + ": detail"})
		for _, q := range serverPrefixes {
			if got := errors.Is(err, q.err); got != (p.err == q.err) {
				t.Errorf("errors.Is(%q, %v) = %v", p.prefix, q.err, got)
			}
		}
	}
	if err := (&ServerError{Mesg: "something new"}); errors.Is(err, ErrNotFound) || errors.Unwrap(err) != nil {
		t.Errorf("an unknown message matched a sentinel")
	}
}

func TestCheckValue(t *testing.T) {
	good := []string{"", "v", "a b", "trailing ", "\rinner\r ok", "é", "{\"json\": 1}"}
	for _, v := range good {
		if err := checkValue("value", v); err != nil {
			t.Errorf("checkValue(%q) = %v", v, err)
		}
	}
}
