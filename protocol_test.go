package kvstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// parsed is a comparable view of ParseRequest's result.
type parsedReq struct {
	Cmd   Command
	Key   string
	Value *string
	Err   error
}

func parseForTest(line string) parsedReq {
	req, err := ParseRequest([]byte(line))
	if err != nil {
		// Reduce to the sentinel so that tables stay readable.
		for _, s := range []error{ErrEmptyRequest, ErrUnknownCommand, ErrWrongArguments, ErrInvalidKey, ErrInvalidUTF8, ErrInvalidValue} {
			if errors.Is(err, s) {
				return parsedReq{Err: s}
			}
		}
		return parsedReq{Err: err}
	}
	p := parsedReq{Cmd: req.Cmd, Key: string(req.Key)}
	if req.Value != nil {
		v := string(req.Value)
		p.Value = &v
	}
	return p
}

func protoStrp(s string) *string { return &s }

func TestProtocolParseRequest(t *testing.T) {
	tests := []struct {
		line string
		want parsedReq
	}{
		{"PUT a 1", parsedReq{Cmd: CmdPut, Key: "a", Value: protoStrp("1")}},
		{"PUT a 1\n", parsedReq{Cmd: CmdPut, Key: "a", Value: protoStrp("1")}},
		{"PUT a 1\r\n", parsedReq{Cmd: CmdPut, Key: "a", Value: protoStrp("1")}},
		{"put a 1", parsedReq{Cmd: CmdPut, Key: "a", Value: protoStrp("1")}},
		{"Put a 1", parsedReq{Cmd: CmdPut, Key: "a", Value: protoStrp("1")}},
		{"  \tPUT \t a \t inner  spaces kept  \r\n", parsedReq{Cmd: CmdPut, Key: "a", Value: protoStrp("inner  spaces kept  ")}},
		{"PUT k ", parsedReq{Cmd: CmdPut, Key: "k", Value: protoStrp("")}},
		{"PUT k \t \r\n", parsedReq{Cmd: CmdPut, Key: "k", Value: protoStrp("")}},
		{"PUT k a\rb", parsedReq{Cmd: CmdPut, Key: "k", Value: protoStrp("a\rb")}},
		{"PUT k \x00\x01\x7f", parsedReq{Cmd: CmdPut, Key: "k", Value: protoStrp("\x00\x01\x7f")}},
		{`PUT georgew {"first_name": "George", "role": "President"}`, parsedReq{Cmd: CmdPut, Key: "georgew", Value: protoStrp(`{"first_name": "George", "role": "President"}`)}},
		{"PUT Κλειδί τιμή ✓", parsedReq{Cmd: CmdPut, Key: "Κλειδί", Value: protoStrp("τιμή ✓")}},
		{"PUT k", parsedReq{Err: ErrWrongArguments}},
		{"PUT k\r\n", parsedReq{Err: ErrWrongArguments}},
		{"PUT", parsedReq{Err: ErrWrongArguments}},
		{"PUT   ", parsedReq{Err: ErrWrongArguments}},
		{"GET a", parsedReq{Cmd: CmdGet, Key: "a"}},
		{"get A", parsedReq{Cmd: CmdGet, Key: "A"}},
		{"GET a \t", parsedReq{Cmd: CmdGet, Key: "a"}},
		{"GET a extra", parsedReq{Err: ErrWrongArguments}},
		{"GET", parsedReq{Err: ErrWrongArguments}},
		{"DEL a", parsedReq{Cmd: CmdDel, Key: "a"}},
		{"dEl a b", parsedReq{Err: ErrWrongArguments}},
		{"START", parsedReq{Cmd: CmdStart}},
		{"start\r\n", parsedReq{Cmd: CmdStart}},
		{"START now", parsedReq{Err: ErrWrongArguments}},
		{"COMMIT", parsedReq{Cmd: CmdCommit}},
		{"ROLLBACK", parsedReq{Cmd: CmdRollback}},
		{"rollback  ", parsedReq{Cmd: CmdRollback}},
		{"EXIT", parsedReq{Cmd: CmdExit}},
		{"quit", parsedReq{Cmd: CmdExit}},
		{"PING", parsedReq{Cmd: CmdPing}},
		{"help", parsedReq{Cmd: CmdHelp}},
		{"", parsedReq{Err: ErrEmptyRequest}},
		{"\n", parsedReq{Err: ErrEmptyRequest}},
		{"\r\n", parsedReq{Err: ErrEmptyRequest}},
		{" \t ", parsedReq{Err: ErrEmptyRequest}},
		{"FOO", parsedReq{Err: ErrUnknownCommand}},
		{"GETS a", parsedReq{Err: ErrUnknownCommand}},
		{"\x00", parsedReq{Err: ErrUnknownCommand}},
		{"GET a\x00b", parsedReq{Err: ErrInvalidKey}},
		{"GET a\rb", parsedReq{Err: ErrInvalidKey}},
		{"GET a\x7f", parsedReq{Err: ErrInvalidKey}},
		{"GET a\u0085", parsedReq{Err: ErrInvalidKey}},  // C1 control (NEL)
		{"GET a\u00a0b", parsedReq{Err: ErrInvalidKey}}, // no-break space
		{"GET a\u2028", parsedReq{Err: ErrInvalidKey}},  // line separator
		{"PUT a\x1bb v", parsedReq{Err: ErrInvalidKey}},
		{"PUT a \xff", parsedReq{Err: ErrInvalidUTF8}},
		{"GET \xc3\x28", parsedReq{Err: ErrInvalidUTF8}},
		{"\xff\xfe", parsedReq{Err: ErrInvalidUTF8}},
		{"PUT a b\nc", parsedReq{Err: ErrInvalidValue}},
	}
	for _, tt := range tests {
		got := parseForTest(tt.line)
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
			t.Errorf("ParseRequest(%q) mismatch (-want +got):\n%s", tt.line, diff)
		}
	}
}

func TestProtocolErrorMessages(t *testing.T) {
	tests := []struct{ line, want string }{
		{"", "empty request"},
		{"FOO bar", `unknown command "FOO" (try HELP)`},
		{strings.Repeat("x", 100), `unknown command "` + strings.Repeat("x", 32) + `"... (try HELP)`},
		{"GET", "wrong number of arguments for GET: usage: GET <key>"},
		{"PUT k", "wrong number of arguments for PUT: usage: PUT <key> <value>"},
		{"START now", "wrong number of arguments for START: usage: START"},
		{"GET a\x01", "invalid key: keys must not contain whitespace or control characters"},
		{"GET \xff", "request is not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := ParseRequest([]byte(tt.line))
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseRequest(%q) error = %v, want %q", tt.line, err, tt.want)
		}
	}
}

func TestProtocolParseAliasesLine(t *testing.T) {
	line := []byte("PUT key value\n")
	req, err := ParseRequest(line)
	if err != nil {
		t.Fatal(err)
	}
	// Key must not be extendable over the value by append.
	if cap(req.Key) != len(req.Key) {
		t.Errorf("cap(Key) = %d, want %d", cap(req.Key), len(req.Key))
	}
	line[4] = 'K'
	if string(req.Key) != "Key" {
		t.Errorf("Key = %q, want it to alias the line", req.Key)
	}
}

func TestProtocolParseAllocs(t *testing.T) {
	for _, line := range []string{"GET somekey\r\n", "PUT somekey some value\n", "START\n", "COMMIT\n"} {
		b := []byte(line)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseRequest(b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("ParseRequest(%q): %v allocs, want 0", line, allocs)
		}
	}
}

func TestProtocolRequestValidateAndString(t *testing.T) {
	valid := []Request{
		{Cmd: CmdPut, Key: []byte("k"), Value: []byte("a b ")},
		{Cmd: CmdPut, Key: []byte("k"), Value: []byte{}},
		{Cmd: CmdGet, Key: []byte("k")},
		{Cmd: CmdStart},
		{Cmd: CmdHelp},
	}
	for _, r := range valid {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", r, err)
		}
		back, err := ParseRequest([]byte(r.String()))
		if err != nil {
			t.Fatalf("ParseRequest(%q): %v", r.String(), err)
		}
		if back.Cmd != r.Cmd || !bytes.Equal(back.Key, r.Key) || !bytes.Equal(back.Value, r.Value) {
			t.Errorf("round trip of %q = %+v", r.String(), back)
		}
	}
	invalid := map[string]Request{
		"none":          {},
		"bogus":         {Cmd: Command(200)},
		"empty key":     {Cmd: CmdGet},
		"bad key":       {Cmd: CmdDel, Key: []byte("a b")},
		"utf8 key":      {Cmd: CmdDel, Key: []byte("\xff")},
		"utf8 value":    {Cmd: CmdPut, Key: []byte("k"), Value: []byte("\xff")},
		"newline value": {Cmd: CmdPut, Key: []byte("k"), Value: []byte("a\nb")},
		"get value":     {Cmd: CmdGet, Key: []byte("k"), Value: []byte("v")},
		"start key":     {Cmd: CmdStart, Key: []byte("k")},
	}
	for name, r := range invalid {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: %+v.Validate() = nil, want an error", name, r)
		}
	}
	if got := Command(99).String(); got != "Command(99)" {
		t.Errorf("Command(99).String() = %q", got)
	}
}

// referenceResponse encodes r with encoding/json, the oracle for
// AppendResponse.
func referenceResponse(t testing.TB, r Response) string {
	t.Helper()
	var v struct {
		Status string  `json:"status"`
		Result any     `json:"result,omitempty"`
		Mesg   *string `json:"mesg,omitempty"`
	}
	v.Status = r.Status.String()
	switch {
	case r.HasResult && r.IsList:
		v.Result = append([]string{}, r.List...)
	case r.HasResult:
		v.Result = &r.Result
	}
	if r.Mesg != "" || r.Status == StatusError {
		v.Mesg = &r.Mesg
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestProtocolAppendResponse(t *testing.T) {
	tests := []struct {
		r    Response
		want string
	}{
		{Response{}, `{"status":"Ok"}` + "\n"},
		{Response{HasResult: true, Result: "1"}, `{"status":"Ok","result":"1"}` + "\n"},
		{Response{HasResult: true}, `{"status":"Ok","result":""}` + "\n"},
		{Response{Mesg: "Bye"}, `{"status":"Ok","mesg":"Bye"}` + "\n"},
		{Response{Status: StatusError, Mesg: "key not found: nobody"}, `{"status":"Error","mesg":"key not found: nobody"}` + "\n"},
		{Response{Status: StatusError}, `{"status":"Error","mesg":""}` + "\n"},
		{Response{HasResult: true, IsList: true}, `{"status":"Ok","result":[]}` + "\n"},
		{Response{HasResult: true, IsList: true, List: []string{"a", "b\"c"}, Mesg: "m"}, `{"status":"Ok","result":["a","b\"c"],"mesg":"m"}` + "\n"},
		{Response{HasResult: true, Result: `{"first_name": "George", "role": "President"}`},
			`{"status":"Ok","result":"{\"first_name\": \"George\", \"role\": \"President\"}"}` + "\n"},
		{Response{HasResult: true, Result: "<a&b>"}, `{"status":"Ok","result":"<a&b>"}` + "\n"},
		{Response{HasResult: true, Result: "tab\there\r\n\x00\x1f\x7f\b\f\\"}, `{"status":"Ok","result":"tab\there\r\n\u0000\u001f` + "\x7f" + `\b\f\\"}` + "\n"},
		{Response{HasResult: true, Result: "héllo ✓ 😀"}, `{"status":"Ok","result":"héllo ✓ 😀"}` + "\n"},
		{Response{HasResult: true, Result: "\u2028\u2029"}, `{"status":"Ok","result":"\u2028\u2029"}` + "\n"},
		{Response{HasResult: true, Result: "a\xffb\xc3"}, `{"status":"Ok","result":"a\ufffdb\ufffd"}` + "\n"},
	}
	for _, tt := range tests {
		got := string(AppendResponse(nil, tt.r))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("AppendResponse(%+v) mismatch (-want +got):\n%s", tt.r, diff)
		}
		if ref := referenceResponse(t, tt.r); got != ref {
			t.Errorf("AppendResponse(%+v) = %q, encoding/json gives %q", tt.r, got, ref)
		}
	}
}

func TestProtocolEncodingMatchesEncodingJSON(t *testing.T) {
	var inputs []string
	for b := 0; b < 256; b++ {
		inputs = append(inputs, string([]byte{'x', byte(b), 'y'}))
	}
	for _, r := range []rune{0x80, 0x9f, 0xa0, 0x7ff, 0x800, 0x2027, 0x2028, 0x2029, 0x202a, 0xfeff, 0xfffd, 0xffff, 0x10000, 0x10ffff} {
		inputs = append(inputs, "a"+string(r)+"b")
	}
	inputs = append(inputs, "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x80", strings.Repeat("é\"\\", 1000))
	for _, s := range inputs {
		for _, r := range []Response{{HasResult: true, Result: s}, {Status: StatusError, Mesg: s}} {
			got := AppendResponse(nil, r)
			if want := referenceResponse(t, r); string(got) != want {
				t.Errorf("AppendResponse(%q) = %q, encoding/json gives %q", s, got, want)
			}
			back, err := ParseResponse(got)
			if err != nil {
				t.Fatalf("ParseResponse(%q): %v", got, err)
			}
			if utf8.ValidString(s) && !reflect.DeepEqual(back, r) {
				t.Errorf("round trip of %q = %+v", s, back)
			}
		}
	}
}

func TestProtocolAppendResponseAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	r := Response{HasResult: true, Result: "some \"value\" ✓\n"}
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendResponse(buf[:0], r)
		buf = appendResult(buf[:0], r.Result)
		buf = appendError(buf[:0], "key not found: ", "k")
	})
	if allocs != 0 {
		t.Errorf("AppendResponse: %v allocs, want 0", allocs)
	}
}

func TestProtocolParseResponse(t *testing.T) {
	good := map[string]Response{
		`{"status":"Ok"}`:                     {},
		`{"status":"Ok","result":""}` + "\n":  {HasResult: true},
		`{"status":"Ok","mesg":"Bye"}`:        {Mesg: "Bye"},
		`{"status":"Error","mesg":"x"}`:       {Status: StatusError, Mesg: "x"},
		`{"status":"Ok","result":"\u00e9\n"}`: {HasResult: true, Result: "é\n"},
	}
	for line, want := range good {
		got, err := ParseResponse([]byte(line))
		if err != nil {
			t.Errorf("ParseResponse(%q): %v", line, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseResponse(%q) mismatch (-want +got):\n%s", line, diff)
		}
	}
	for _, line := range []string{``, `{}`, `{"status":"ok"}`, `{"status":1}`, `[`, `{"result":"x"}`} {
		if _, err := ParseResponse([]byte(line)); err == nil {
			t.Errorf("ParseResponse(%q) succeeded, want an error", line)
		}
	}
}

func BenchmarkParseRequestGet(b *testing.B) {
	line := []byte("GET user:12345\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendResult(buf[:0], `{"first_name": "George", "role": "President"}`)
	}
}
