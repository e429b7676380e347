package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// response is one decoded response line.
type response struct {
	ok bool
	// hasResult says whether "result" was present (and not null).
	hasResult bool
	// result is the decoded result when it is a JSON string.
	result string
	// raw is the JSON text of a result that is not a string (KEYS answers
	// an array, STATS an object); nil otherwise. It is a copy, owned by
	// the response.
	raw []byte
	// mesg is "mesg", or "".
	mesg string
}

// Prefixes of the response lines the server sends most often, decoded
// without encoding/json.
var (
	lineOk       = []byte(`{"status":"Ok"}`)
	prefixResult = []byte(`{"status":"Ok","result":"`)
	suffixResult = []byte(`"}`)
)

// parseResponse decodes one response line, with or without its "\n" or
// "\r\n". It never panics and accepts exactly what parseResponseJSON
// accepts, with the same outcome; the common shapes ({"status":"Ok"} and a
// result string without escapes) take a fast path. Errors wrap ErrProtocol.
func parseResponse(line []byte) (response, error) {
	line = trimEOL(line)
	if bytes.Equal(line, lineOk) {
		return response{ok: true}, nil
	}
	if len(line) >= len(prefixResult)+len(suffixResult) &&
		bytes.HasPrefix(line, prefixResult) && bytes.HasSuffix(line, suffixResult) {
		body := line[len(prefixResult) : len(line)-len(suffixResult)]
		if plainJSONString(body) {
			return response{ok: true, hasResult: true, result: string(body)}, nil
		}
	}
	return parseResponseJSON(line)
}

// plainJSONString reports whether b is the inside of a JSON string that
// needs no unescaping: valid UTF-8 without '"', '\\' or control characters.
func plainJSONString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

// trimEOL drops a trailing "\n" and then a trailing "\r".
func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// parseResponseJSON decodes a response line with encoding/json. The line
// must be one JSON object with "status" "Ok" or "Error"; "result" may be
// any JSON value (a string for GET, an array for KEYS, an object for
// STATS); unknown fields are ignored, for servers newer than this client.
func parseResponseJSON(line []byte) (response, error) {
	var wire struct {
		Status *string          `json:"status"`
		Result json.RawMessage  `json:"result"`
		Mesg   *json.RawMessage `json:"mesg"`
	}
	if err := json.Unmarshal(line, &wire); err != nil {
		return response{}, protocolError(line, err.Error())
	}
	var r response
	switch {
	case wire.Status == nil:
		return response{}, protocolError(line, "no status")
	case *wire.Status == "Ok":
		r.ok = true
	case *wire.Status == "Error":
	default:
		return response{}, protocolError(line, "unknown status")
	}
	if wire.Mesg != nil && string(*wire.Mesg) != "null" {
		if err := json.Unmarshal(*wire.Mesg, &r.mesg); err != nil {
			return response{}, protocolError(line, "mesg is not a string")
		}
	}
	if len(wire.Result) > 0 && string(wire.Result) != "null" {
		r.hasResult = true
		if wire.Result[0] == '"' {
			if err := json.Unmarshal(wire.Result, &r.result); err != nil {
				return response{}, protocolError(line, err.Error())
			}
		} else {
			r.raw = wire.Result
		}
	}
	return r, nil
}

// maxQuoted bounds how much of a bad line an error message repeats.
const maxQuoted = 200

func protocolError(line []byte, why string) error {
	if len(line) > maxQuoted {
		return fmt.Errorf("%w: %s: %q (cut)", ErrProtocol, why, line[:maxQuoted])
	}
	return fmt.Errorf("%w: %s: %q", ErrProtocol, why, line)
}
