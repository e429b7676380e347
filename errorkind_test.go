package kvstore

import "testing"

// TestResponseErrKind: every stable prefix maps to its own kind, and the
// responses that are not errors to none.
func TestResponseErrKind(t *testing.T) {
	for k := range errOther {
		resp := appendError(nil, errKinds[k].prefix, " and some detail")
		if got, ok := responseErrKind(resp); !ok || got != k {
			t.Errorf("%s: kind %s, %v", resp, errKinds[got].name, ok)
		}
	}
	for _, resp := range []string{`{"status":"Error","mesg":"compact: disk full"}` + "\n", `{"status":"Error","mesg":"transaction error: x"}`} {
		if got, ok := responseErrKind([]byte(resp)); !ok || got != errOther {
			t.Errorf("%s: kind %s, %v", resp, errKinds[got].name, ok)
		}
	}
	for _, resp := range []string{`{"status":"Ok"}`, `{"status":"Ok","result":"{\"status\":\"Error\",\"mesg\":\"key not found\"}"}`, ``} {
		if _, ok := responseErrKind([]byte(resp)); ok {
			t.Errorf("%s counted as an error", resp)
		}
	}
	if len(ErrorKinds()) != int(numErrKinds) || ErrorKinds()[errAuthRequired] != "auth_required" {
		t.Errorf("ErrorKinds() = %v", ErrorKinds())
	}
}
