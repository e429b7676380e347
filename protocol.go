package kvstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// This file is the wire protocol layer: it parses one request line into a
// Request and encodes a Response as one JSON line. It never sees sockets or
// goroutines, so any front end (a TCP server, an HTTP handler, a test) can
// reuse it.

// Command is the verb of a request.
type Command uint8

// The commands of the protocol. Command names are case-insensitive on the
// wire; QUIT is parsed as CmdExit.
const (
	// CmdNone is the zero Command; ParseRequest never returns it without an
	// error.
	CmdNone Command = iota
	// CmdPut is "PUT <key> <value>": store value under key.
	CmdPut
	// CmdGet is "GET <key>": return the value of key.
	CmdGet
	// CmdDel is "DEL <key>": delete key.
	CmdDel
	// CmdStart is "START": open a (possibly nested) transaction.
	CmdStart
	// CmdCommit is "COMMIT": commit the innermost transaction level.
	CmdCommit
	// CmdRollback is "ROLLBACK": discard the innermost transaction level.
	CmdRollback
	// CmdExit is "EXIT" or "QUIT": say goodbye and close the connection.
	CmdExit
	// CmdPing is "PING": answer {"status":"Ok","result":"PONG"}.
	CmdPing
	// CmdHelp is "HELP": answer a one-line summary of the commands.
	CmdHelp
	// CmdCompact is "COMPACT": start a compaction of a durable store's
	// log into a snapshot, in the background (see Store.Compact).
	CmdCompact
	// CmdAuth is "AUTH <password>": authenticate the connection (the
	// password is the rest of the line, like PUT's value).
	CmdAuth
	// CmdStats is "STATS": answer a JSON object of server figures (see
	// Stats).
	CmdStats
	// CmdExpire is "EXPIRE <key> <seconds>": make key expire in seconds.
	CmdExpire
	// CmdTTL is "TTL <key>": answer the seconds key has left to live
	// (rounded up), or "-1" for a key without a time to live.
	CmdTTL
	// CmdPersist is "PERSIST <key>": remove key's time to live.
	CmdPersist
	// CmdKeys is "KEYS <prefix>* [LIMIT <n> [AFTER <key>]]": answer the
	// matching keys in byte order, as a JSON array.
	CmdKeys
)

// Limits of KEYS. A listing without LIMIT that would hold more than
// MaxUnpagedKeys keys, or more than MaxKeysBytes bytes of keys, is an error
// telling the client to page; LIMIT accepts 1 to MaxKeysLimit. A page stops
// early, with a "mesg" saying so, once it holds MaxKeysBytes bytes of keys
// (always at least one key).
const (
	MaxUnpagedKeys = 1000
	MaxKeysLimit   = 10000
	MaxKeysBytes   = 1 << 20
)

// MaxExpireSeconds is the longest time to live EXPIRE accepts (about 95
// years). Expiry times are absolute unix nanoseconds in 64 bits, which end
// in the year 2262: the bound keeps now plus the longest time to live below
// that until the year 2167, so that TTL answers what EXPIRE set. (Past
// that, an expiry time is capped at the largest one.)
const MaxExpireSeconds = 3_000_000_000

var commandNames = [...]string{
	CmdNone:     "",
	CmdPut:      "PUT",
	CmdGet:      "GET",
	CmdDel:      "DEL",
	CmdStart:    "START",
	CmdCommit:   "COMMIT",
	CmdRollback: "ROLLBACK",
	CmdExit:     "EXIT",
	CmdPing:     "PING",
	CmdHelp:     "HELP",
	CmdCompact:  "COMPACT",
	CmdAuth:     "AUTH",
	CmdStats:    "STATS",
	CmdExpire:   "EXPIRE",
	CmdTTL:      "TTL",
	CmdPersist:  "PERSIST",
	CmdKeys:     "KEYS",
}

var commandUsage = [...]string{
	CmdPut:      "PUT <key> <value>",
	CmdGet:      "GET <key>",
	CmdDel:      "DEL <key>",
	CmdStart:    "START",
	CmdCommit:   "COMMIT",
	CmdRollback: "ROLLBACK",
	CmdExit:     "EXIT",
	CmdPing:     "PING",
	CmdHelp:     "HELP",
	CmdCompact:  "COMPACT",
	CmdAuth:     "AUTH <password>",
	CmdStats:    "STATS",
	CmdExpire:   "EXPIRE <key> <seconds>",
	CmdTTL:      "TTL <key>",
	CmdPersist:  "PERSIST <key>",
	CmdKeys:     "KEYS <prefix>* [LIMIT <n> [AFTER <key>]]",
}

// String returns the canonical (upper-case) name of the command, or
// "Command(n)" for an unknown value.
func (c Command) String() string {
	if int(c) < len(commandNames) && c != CmdNone {
		return commandNames[c]
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// Errors returned by ParseRequest and Request.Validate. They are returned
// wrapped with more context (the command, its usage); test for them with
// errors.Is. The wrapped error's text is what the server sends as "mesg".
var (
	// ErrEmptyRequest: the line holds nothing but spaces and tabs.
	ErrEmptyRequest = errors.New("empty request")
	// ErrUnknownCommand: the first token is not a command.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrWrongArguments: too few or too many arguments for the command.
	ErrWrongArguments = errors.New("wrong number of arguments")
	// ErrInvalidKey: the key contains a control character or whitespace.
	ErrInvalidKey = errors.New("invalid key: keys must not contain whitespace or control characters")
	// ErrInvalidUTF8: the request line is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("request is not valid UTF-8")
	// ErrInvalidValue: a value contains a newline (only possible when a
	// front end passes a multi-line string to ParseRequest).
	ErrInvalidValue = errors.New("invalid value: values must not contain a newline")
	// ErrLineTooLong: the request line is longer than the server's limit.
	// ParseRequest never returns it; connection readers do.
	ErrLineTooLong = errors.New("request line too long")
	// ErrIncompleteRequest: the client closed its sending side (or the
	// connection) after a last line that did not end with "\n". That line
	// is not executed; where the client can still read, it gets this error.
	// ParseRequest never returns it; connection readers do.
	ErrIncompleteRequest = errors.New("incomplete request")
	// ErrInvalidArgument: an argument other than a key is malformed or out
	// of range (EXPIRE's seconds, KEYS's pattern or LIMIT).
	ErrInvalidArgument = errors.New("invalid argument")
)

// Argument errors of EXPIRE and KEYS.
var (
	errBadSeconds = fmt.Errorf("%w: seconds must be an integer from 1 to %d", ErrInvalidArgument, MaxExpireSeconds)
	errBadPattern = fmt.Errorf("%w: the pattern must be * or <prefix>* (a literal prefix, then one *)", ErrInvalidArgument)
	errBadLimit   = fmt.Errorf("%w: LIMIT must be an integer from 1 to %d", ErrInvalidArgument, MaxKeysLimit)
)

// wrongArgs holds one preallocated error per command, so that argument
// errors do not allocate.
var wrongArgs [len(commandNames)]error

func init() {
	for c := CmdPut; int(c) < len(commandNames); c++ {
		wrongArgs[c] = fmt.Errorf("%w for %s: usage: %s", ErrWrongArguments, commandNames[c], commandUsage[c])
	}
}

// Request is one parsed request line.
//
// Key and Value returned by ParseRequest alias the line passed to it: they
// are valid only until the caller reuses that buffer. Copy them (or use
// Session, which copies exactly what the store retains) before keeping them.
type Request struct {
	// Cmd is the command.
	Cmd Command
	// Key is the key for PUT, GET, DEL, EXPIRE, TTL and PERSIST, and the
	// pattern (ending in "*") for KEYS; nil otherwise.
	Key []byte
	// Value is the value for PUT (possibly empty, never nil for PUT), or
	// the password for AUTH; nil otherwise.
	Value []byte
	// Seconds is EXPIRE's time to live; 0 otherwise.
	Seconds int64
	// Limit is KEYS's page size (0: no LIMIT, an unpaged listing).
	Limit int
	// After is KEYS's AFTER key: the listing starts after it. nil: no AFTER.
	After []byte

	// parsed is set by ParseRequest: the request is known to be valid, so
	// Session.Execute need not check it again.
	parsed bool
}

// ParseRequest parses one request line. The line may end in "\n" or
// "\r\n"; the terminator is not part of the request (a single trailing "\r"
// is dropped even without "\n").
//
// Tokenizing follows the protocol: leading spaces and tabs are skipped; the
// command and the key end at the next space or tab; for PUT the value is
// everything after the run of spaces and tabs that follows the key, byte
// for byte ("PUT k " stores the empty string, "PUT k" is an error). Other
// commands accept trailing spaces and tabs but no further arguments.
//
// ParseRequest does not allocate for a valid request. The returned Key and
// Value alias line. Errors wrap one of ErrEmptyRequest, ErrUnknownCommand,
// ErrWrongArguments, ErrInvalidKey, ErrInvalidUTF8 or ErrInvalidValue.
func ParseRequest(line []byte) (Request, error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if !utf8.Valid(line) {
		return Request{}, ErrInvalidUTF8
	}
	i := skipSeparators(line, 0)
	if i == len(line) {
		return Request{}, ErrEmptyRequest
	}
	j := tokenEnd(line, i)
	cmd := lookupCommand(line[i:j])
	if cmd == CmdNone {
		return Request{}, unknownCommand(line[i:j])
	}
	req := Request{Cmd: cmd, parsed: true}
	i = skipSeparators(line, j)
	switch cmd {
	case CmdExpire, CmdKeys:
		return parseArgs(req, line, i)
	case CmdGet, CmdDel, CmdPut, CmdTTL, CmdPersist:
		if i == len(line) {
			return Request{}, wrongArgs[cmd]
		}
		j = tokenEnd(line, i)
		req.Key = line[i:j:j]
		if !validKey(req.Key) {
			return Request{}, ErrInvalidKey
		}
		if cmd == CmdPut {
			if j == len(line) {
				return Request{}, wrongArgs[cmd] // "PUT k": no value at all
			}
			req.Value = line[skipSeparators(line, j):]
			if bytes.IndexByte(req.Value, '\n') >= 0 {
				return Request{}, ErrInvalidValue
			}
			return req, nil
		}
		if skipSeparators(line, j) != len(line) {
			return Request{}, wrongArgs[cmd]
		}
	case CmdAuth:
		// The password is the rest of the line, like PUT's value.
		if i == len(line) {
			return Request{}, wrongArgs[cmd]
		}
		req.Value = line[i:]
		if bytes.IndexByte(req.Value, '\n') >= 0 {
			return Request{}, ErrInvalidValue
		}
	default:
		if i != len(line) {
			return Request{}, wrongArgs[cmd]
		}
	}
	return req, nil
}

// parseArgs parses the arguments of EXPIRE and KEYS, which start at line[i].
func parseArgs(req Request, line []byte, i int) (Request, error) {
	var toks [5][]byte
	n := 0
	for i < len(line) {
		if n == len(toks) {
			return Request{}, wrongArgs[req.Cmd]
		}
		j := tokenEnd(line, i)
		toks[n] = line[i:j:j]
		n++
		i = skipSeparators(line, j)
	}
	if n == 0 {
		return Request{}, wrongArgs[req.Cmd]
	}
	req.Key = toks[0]
	if req.Cmd == CmdExpire {
		if n != 2 {
			return Request{}, wrongArgs[req.Cmd]
		}
		secs, ok := parsePositive(toks[1], MaxExpireSeconds)
		if !ok {
			return Request{}, errBadSeconds
		}
		req.Seconds = secs
		return req, req.checkArgs()
	}
	switch {
	case n == 1:
	case (n == 3 || n == 5) && equalFold(toks[1], "LIMIT"):
		limit, ok := parsePositive(toks[2], MaxKeysLimit)
		if !ok {
			return Request{}, errBadLimit
		}
		req.Limit = int(limit)
		if n == 5 {
			if !equalFold(toks[3], "AFTER") {
				return Request{}, wrongArgs[req.Cmd]
			}
			req.After = toks[4]
		}
	default:
		return Request{}, wrongArgs[req.Cmd]
	}
	return req, req.checkArgs()
}

// parsePositive parses a decimal integer from 1 to max, without signs or
// leading zeros' trouble (they are accepted), without allocating.
func parsePositive(b []byte, max int64) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v >= 1 && v <= max
}

// checkArgs checks the arguments of EXPIRE and KEYS that both ParseRequest
// and Validate check.
func (r Request) checkArgs() error {
	if !validKey(r.Key) {
		return ErrInvalidKey
	}
	switch r.Cmd {
	case CmdExpire:
		if r.Seconds < 1 || r.Seconds > MaxExpireSeconds {
			return errBadSeconds
		}
	case CmdKeys:
		if r.Key[len(r.Key)-1] != '*' {
			return errBadPattern
		}
		if r.Limit < 0 || r.Limit > MaxKeysLimit {
			return errBadLimit
		}
		if r.After != nil && (r.Limit == 0 || !validKey(r.After)) {
			if r.Limit == 0 {
				return wrongArgs[r.Cmd]
			}
			return ErrInvalidKey
		}
	}
	return nil
}

// KeysPrefix returns the prefix a KEYS request lists: its pattern without
// the final "*".
func (r Request) KeysPrefix() []byte {
	if r.Cmd != CmdKeys || len(r.Key) == 0 {
		return nil
	}
	return r.Key[:len(r.Key)-1]
}

// Validate reports whether r is a well-formed request, with the same errors
// ParseRequest returns. Session.Execute calls it for requests that were not
// produced by ParseRequest.
func (r Request) Validate() error {
	if r.Cmd == CmdNone || int(r.Cmd) >= len(commandNames) {
		return fmt.Errorf("%w: %s", ErrUnknownCommand, r.Cmd)
	}
	if r.Cmd != CmdExpire && r.Seconds != 0 || r.Cmd != CmdKeys && (r.Limit != 0 || r.After != nil) {
		return wrongArgs[r.Cmd]
	}
	switch r.Cmd {
	case CmdExpire, CmdKeys:
		if len(r.Key) == 0 || r.Value != nil {
			return wrongArgs[r.Cmd]
		}
		if !utf8.Valid(r.Key) || !utf8.Valid(r.After) {
			return ErrInvalidUTF8
		}
		return r.checkArgs()
	case CmdGet, CmdDel, CmdPut, CmdTTL, CmdPersist:
		if len(r.Key) == 0 {
			return wrongArgs[r.Cmd]
		}
		if !utf8.Valid(r.Key) {
			return ErrInvalidUTF8
		}
		if !validKey(r.Key) {
			return ErrInvalidKey
		}
		if r.Cmd == CmdPut {
			if !utf8.Valid(r.Value) {
				return ErrInvalidUTF8
			}
			if bytes.IndexByte(r.Value, '\n') >= 0 {
				return ErrInvalidValue
			}
		} else if r.Value != nil {
			return wrongArgs[r.Cmd]
		}
	case CmdAuth:
		if r.Key != nil || len(r.Value) == 0 {
			return wrongArgs[r.Cmd]
		}
		if !utf8.Valid(r.Value) {
			return ErrInvalidUTF8
		}
		if bytes.IndexByte(r.Value, '\n') >= 0 {
			return ErrInvalidValue
		}
	default:
		if r.Key != nil || r.Value != nil {
			return wrongArgs[r.Cmd]
		}
	}
	return nil
}

// String formats r as a request line without the trailing newline, the
// form ParseRequest accepts.
func (r Request) String() string {
	switch r.Cmd {
	case CmdPut:
		return r.Cmd.String() + " " + string(r.Key) + " " + string(r.Value)
	case CmdGet, CmdDel, CmdTTL, CmdPersist:
		return r.Cmd.String() + " " + string(r.Key)
	case CmdAuth:
		return r.Cmd.String() + " " + string(r.Value)
	case CmdExpire:
		return r.Cmd.String() + " " + string(r.Key) + " " + strconv.FormatInt(r.Seconds, 10)
	case CmdKeys:
		s := r.Cmd.String() + " " + string(r.Key)
		if r.Limit != 0 {
			s += " LIMIT " + strconv.Itoa(r.Limit)
		}
		if r.After != nil {
			s += " AFTER " + string(r.After)
		}
		return s
	}
	return r.Cmd.String()
}

func skipSeparators(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

func tokenEnd(b []byte, i int) int {
	for i < len(b) && b[i] != ' ' && b[i] != '\t' {
		i++
	}
	return i
}

// lookupCommand matches an upper- or mixed-case command name without
// allocating.
func lookupCommand(tok []byte) Command {
	switch len(tok) {
	case 3:
		switch {
		case equalFold(tok, "GET"):
			return CmdGet
		case equalFold(tok, "PUT"):
			return CmdPut
		case equalFold(tok, "DEL"):
			return CmdDel
		case equalFold(tok, "TTL"):
			return CmdTTL
		}
	case 4:
		switch {
		case equalFold(tok, "EXIT"):
			return CmdExit
		case equalFold(tok, "QUIT"):
			return CmdExit
		case equalFold(tok, "PING"):
			return CmdPing
		case equalFold(tok, "HELP"):
			return CmdHelp
		case equalFold(tok, "AUTH"):
			return CmdAuth
		case equalFold(tok, "KEYS"):
			return CmdKeys
		}
	case 5:
		switch {
		case equalFold(tok, "START"):
			return CmdStart
		case equalFold(tok, "STATS"):
			return CmdStats
		}
	case 6:
		switch {
		case equalFold(tok, "COMMIT"):
			return CmdCommit
		case equalFold(tok, "EXPIRE"):
			return CmdExpire
		}
	case 7:
		switch {
		case equalFold(tok, "PERSIST"):
			return CmdPersist
		case equalFold(tok, "COMPACT"):
			return CmdCompact
		}
	case 8:
		if equalFold(tok, "ROLLBACK") {
			return CmdRollback
		}
	}
	return CmdNone
}

// equalFold reports whether b equals the upper-case ASCII word, ignoring
// ASCII case.
func equalFold(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// maxEchoedCommand bounds how much of an unknown command is echoed back.
const maxEchoedCommand = 32

func unknownCommand(tok []byte) error {
	if len(tok) > maxEchoedCommand {
		return fmt.Errorf("%w %q... (try HELP)", ErrUnknownCommand, tok[:maxEchoedCommand])
	}
	return fmt.Errorf("%w %q (try HELP)", ErrUnknownCommand, tok)
}

// validKey reports whether key is a valid key, assuming it is valid UTF-8:
// non-empty, no whitespace, no control characters.
func validKey(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(key[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
		i += size
	}
	return true
}

// Status is the status of a response: "Ok" or "Error" on the wire.
type Status uint8

const (
	// StatusOk is "Ok".
	StatusOk Status = iota
	// StatusError is "Error".
	StatusError
)

// String returns "Ok" or "Error".
func (s Status) String() string {
	if s == StatusOk {
		return "Ok"
	}
	return "Error"
}

// Response is one response. It is encoded as one JSON object whose fields
// appear in the order status, result, mesg:
//
//	{"status":"Ok"}
//	{"status":"Ok","result":"<value>"}
//	{"status":"Ok","result":["<key>","<key>"]}
//	{"status":"Ok","mesg":"Bye"}
//	{"status":"Error","mesg":"key not found: k"}
type Response struct {
	// Status is Ok or Error.
	Status Status
	// Result is the value returned by GET (or PING, HELP, TTL). It is
	// encoded only when HasResult is true, so an empty value is
	// "result":"".
	Result string
	// HasResult says whether "result" is present.
	HasResult bool
	// List is the result of KEYS: when IsList is true (with HasResult),
	// "result" is a JSON array of List's strings (an empty one for a nil
	// List) and Result is ignored.
	List   []string
	IsList bool
	// Mesg is human-readable context. It is encoded when non-empty, and
	// always for an Error.
	Mesg string
}

// AppendResponse appends r to dst as one JSON object and "\n", and returns
// the extended buffer. It does not allocate when dst has room.
//
// Strings are encoded exactly as encoding/json does with HTML escaping off:
// '"', '\\' and control characters are escaped (\n, \r, \t, \b, \f, or
// \u00XX), U+2028 and U+2029 become \u2028 and \u2029, other UTF-8 is
// kept as is, and each byte of invalid UTF-8 becomes \ufffd.
func AppendResponse(dst []byte, r Response) []byte {
	if r.Status == StatusOk {
		dst = append(dst, `{"status":"Ok"`...)
	} else {
		dst = append(dst, `{"status":"Error"`...)
	}
	switch {
	case r.HasResult && r.IsList:
		dst = append(dst, `,"result":[`...)
		for i, s := range r.List {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = appendJSONString(dst, s)
			dst = append(dst, '"')
		}
		dst = append(dst, ']')
	case r.HasResult:
		dst = append(dst, `,"result":"`...)
		dst = appendJSONString(dst, r.Result)
		dst = append(dst, '"')
	}
	if r.Mesg != "" || r.Status != StatusOk {
		dst = append(dst, `,"mesg":"`...)
		dst = appendJSONString(dst, r.Mesg)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

// appendOk appends {"status":"Ok"}.
func appendOk(dst []byte) []byte {
	return append(dst, "{\"status\":\"Ok\"}\n"...)
}

// appendResult appends {"status":"Ok","result":"<v>"}.
func appendResult(dst []byte, v string) []byte {
	dst = append(dst, `{"status":"Ok","result":"`...)
	dst = appendJSONString(dst, v)
	return append(dst, "\"}\n"...)
}

// appendError appends {"status":"Error","mesg":"<prefix><detail>"} without
// building the message first.
func appendError(dst []byte, prefix, detail string) []byte {
	dst = append(dst, `{"status":"Error","mesg":"`...)
	dst = appendJSONString(dst, prefix)
	dst = appendJSONString(dst, detail)
	return append(dst, "\"}\n"...)
}

const hexDigits = "0123456789abcdef"

// jsonSafe[b] is true for ASCII bytes that encoding/json copies verbatim
// with HTML escaping off.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendJSONString appends s, escaped, without the surrounding quotes. It
// matches encoding/json's output with SetEscapeHTML(false).
func appendJSONString(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// ParseResponse decodes one response line (with or without its trailing
// newline), for clients and tests. It checks that status is "Ok" or
// "Error"; it does not check field order.
func ParseResponse(line []byte) (Response, error) {
	var raw struct {
		Status *string          `json:"status"`
		Result *json.RawMessage `json:"result"`
		Mesg   *string          `json:"mesg"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return Response{}, fmt.Errorf("kvstore: bad response %q: %w", line, err)
	}
	var r Response
	switch {
	case raw.Status == nil:
		return Response{}, fmt.Errorf("kvstore: bad response %q: no status", line)
	case *raw.Status == "Ok":
		r.Status = StatusOk
	case *raw.Status == "Error":
		r.Status = StatusError
	default:
		return Response{}, fmt.Errorf("kvstore: bad response %q: status %q", line, *raw.Status)
	}
	if raw.Result != nil {
		r.HasResult = true
		var err error
		if b := bytes.TrimLeft(*raw.Result, " \t\r\n"); len(b) > 0 && b[0] == '[' {
			r.IsList = true
			r.List = []string{}
			err = json.Unmarshal(b, &r.List)
		} else {
			err = json.Unmarshal(b, &r.Result)
		}
		if err != nil {
			return Response{}, fmt.Errorf("kvstore: bad response %q: result: %w", line, err)
		}
	}
	if raw.Mesg != nil {
		r.Mesg = *raw.Mesg
	}
	return r, nil
}

// bytesView returns a string that shares b's memory. The string must not
// outlive b's contents: use it only for lookups that do not retain it.
func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
