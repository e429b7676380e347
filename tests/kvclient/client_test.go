package kvclient

import (
	"errors"
	"testing"
)

// TestParseResponse: the strict decoder accepts exactly the shapes of
// docs/PROTOCOL.md ("Responses"), so that the suites notice a malformed response.
func TestParseResponse(t *testing.T) {
	good := []string{
		`{"status":"Ok"}`,
		`{"status":"Ok","result":""}`,
		`{"status":"Ok","result":"<a&b> \u00e9"}`,
		`{"status":"Ok","mesg":"Bye"}`,
		`{"status":"Error","mesg":"key not found: k"}`,
	}
	bad := []string{
		``,
		`{"status":"Ok"`,
		`{"status":"ok"}`,
		`{"result":"x"}`,
		`{"status":"Error"}`,
		`{"status":"Error","result":"x","mesg":"m"}`,
		`{"status":"Ok","extra":1}`,
		`{"status":"Ok"} {"status":"Ok"}`,
		`{"status":"Ok","result":5}`,
	}
	for _, s := range good {
		if _, err := ParseResponse([]byte(s)); err != nil {
			t.Errorf("ParseResponse(%s): %v", s, err)
		}
	}
	for _, s := range bad {
		if r, err := ParseResponse([]byte(s)); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseResponse(%s) = %v, %v; want a protocol error", s, r, err)
		}
	}
	r, _ := ParseResponse([]byte(`{"status":"Error","mesg":"conflict: another client changed a key"}`))
	if !r.IsConflict() || r.IsNotFound() {
		t.Errorf("conflict response misclassified: %v", r)
	}
	r, _ = ParseResponse([]byte(`{"status":"Ok","result":""}`))
	if !r.OK() || r.Result == nil || *r.Result != "" {
		t.Errorf("empty result lost: %v", r)
	}
}
