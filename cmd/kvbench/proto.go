package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// reply classifies one server response.
type reply uint8

const (
	replyOK       reply = iota // success without a value (+OK, +QUEUED, {"status":"Ok"}, EXEC results)
	replyValue                 // success with a value (GET hit)
	replyMiss                  // key not found (GET miss)
	replyConflict              // transaction aborted by a conflict (kvd COMMIT, RESP nil EXEC)
	replyError                 // any other error reply
)

func (r reply) String() string {
	switch r {
	case replyOK:
		return "ok"
	case replyValue:
		return "value"
	case replyMiss:
		return "miss"
	case replyConflict:
		return "conflict"
	}
	return "error"
}

// expect says what a request may legitimately be answered with.
type expect uint8

const (
	expectOK     expect = iota // PUT, SET, START, WATCH, MULTI, queued SET
	expectGet                  // GET: a value or a miss
	expectCommit               // COMMIT / EXEC: success or a conflict
)

// outcome is what the client counts for one reply.
type outcome uint8

const (
	outOK outcome = iota
	outMiss
	outConflict
	outError
)

// judge maps a reply to the expectation of its request.
func judge(e expect, r reply) outcome {
	switch e {
	case expectGet:
		switch r {
		case replyValue:
			return outOK
		case replyMiss:
			return outMiss
		}
	case expectCommit:
		switch r {
		case replyOK:
			return outOK
		case replyConflict:
			return outConflict
		}
	default:
		if r == replyOK {
			return outOK
		}
	}
	return outError
}

// protocol builds requests into a caller-owned buffer (append style, so a
// reused buffer makes request building allocation-free) and reads replies.
type protocol interface {
	name() string
	appendGet(b, key []byte) []byte
	appendPut(b, key, val []byte) []byte
	// appendTxn appends a read-modify-write transaction over keys (read
	// every key, then write every key) and the expectation of each reply.
	appendTxn(b []byte, exp []expect, keys [][]byte, val []byte) ([]byte, []expect)
	// readReply reads one complete reply. msg is only set for error
	// replies; it aliases r's buffer and is valid until the next read.
	readReply(r *bufio.Reader) (rep reply, msg []byte, err error)
}

func protocolByName(name string) (protocol, error) {
	switch name {
	case "kvd":
		return kvdProto{}, nil
	case "resp":
		return respProto{}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (want kvd or resp)", name)
}

// kvdProto is kvd's line protocol (see docs/PROTOCOL.md): requests are text lines
// and every reply is one JSON object line whose first field is status.
type kvdProto struct{}

func (kvdProto) name() string { return "kvd" }

func (kvdProto) appendGet(b, key []byte) []byte {
	b = append(b, "GET "...)
	b = append(b, key...)
	return append(b, '\n')
}

func (kvdProto) appendPut(b, key, val []byte) []byte {
	b = append(b, "PUT "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = append(b, val...)
	return append(b, '\n')
}

func (p kvdProto) appendTxn(b []byte, exp []expect, keys [][]byte, val []byte) ([]byte, []expect) {
	b = append(b, "START\n"...)
	exp = append(exp, expectOK)
	for _, k := range keys {
		b = p.appendGet(b, k)
		exp = append(exp, expectGet)
	}
	for _, k := range keys {
		b = p.appendPut(b, k, val)
		exp = append(exp, expectOK)
	}
	b = append(b, "COMMIT\n"...)
	return b, append(exp, expectCommit)
}

var (
	kvdOK       = []byte(`"status":"Ok"`)
	kvdError    = []byte(`"status":"Error"`)
	kvdResult   = []byte(`"result":`)
	kvdNotFound = []byte("not found")
	kvdConflict = []byte("onflict") // "conflict" or "Conflict"
)

func (kvdProto) readReply(r *bufio.Reader) (reply, []byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// A value larger than the read buffer: classify on the first
		// chunk (status and the start of result come first) and skip
		// the rest of the line. Copying the head is not needed because
		// the classification happens before the buffer is reused.
		rep, msg := classifyKVD(line)
		for err == bufio.ErrBufferFull {
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			return replyError, nil, err
		}
		if rep == replyError {
			msg = nil // aliased bytes were overwritten
		}
		return rep, msg, nil
	}
	if err != nil {
		return replyError, nil, err
	}
	rep, msg := classifyKVD(line)
	return rep, msg, nil
}

// classifyKVD classifies one kvd reply line (or its first chunk).
func classifyKVD(line []byte) (reply, []byte) {
	head := line
	if len(head) > 64 {
		head = head[:64]
	}
	switch {
	case bytes.Contains(head, kvdOK):
		if bytes.Contains(head, kvdResult) {
			return replyValue, nil
		}
		return replyOK, nil
	case bytes.Contains(head, kvdError):
		msg := bytes.TrimRight(line, "\r\n")
		if bytes.Contains(line, kvdNotFound) {
			return replyMiss, msg
		}
		if bytes.Contains(line, kvdConflict) {
			return replyConflict, msg
		}
		return replyError, msg
	}
	return replyError, bytes.TrimRight(line, "\r\n")
}

// respProto is RESP2, as spoken by redis-server. Transactions use the
// optimistic WATCH/GET/MULTI/SET/EXEC pattern, which is Redis's equivalent
// of an interactive read-modify-write transaction: EXEC returns a nil array
// (counted as a conflict) when a watched key changed after WATCH.
type respProto struct{}

func (respProto) name() string { return "resp" }

func appendBulk(b, s []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, "\r\n"...)
	b = append(b, s...)
	return append(b, "\r\n"...)
}

func (respProto) appendGet(b, key []byte) []byte {
	b = append(b, "*2\r\n$3\r\nGET\r\n"...)
	return appendBulk(b, key)
}

func (respProto) appendPut(b, key, val []byte) []byte {
	b = append(b, "*3\r\n$3\r\nSET\r\n"...)
	b = appendBulk(b, key)
	return appendBulk(b, val)
}

func (p respProto) appendTxn(b []byte, exp []expect, keys [][]byte, val []byte) ([]byte, []expect) {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(keys)+1), 10)
	b = append(b, "\r\n$5\r\nWATCH\r\n"...)
	for _, k := range keys {
		b = appendBulk(b, k)
	}
	exp = append(exp, expectOK)
	for _, k := range keys {
		b = p.appendGet(b, k)
		exp = append(exp, expectGet)
	}
	b = append(b, "*1\r\n$5\r\nMULTI\r\n"...)
	exp = append(exp, expectOK)
	for _, k := range keys {
		b = p.appendPut(b, k, val)
		exp = append(exp, expectOK) // +QUEUED
	}
	b = append(b, "*1\r\n$4\r\nEXEC\r\n"...)
	return b, append(exp, expectCommit)
}

var errRESP = errors.New("malformed RESP reply")

func (p respProto) readReply(r *bufio.Reader) (reply, []byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			err = errRESP
		}
		return replyError, nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return replyError, nil, errRESP
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', ':':
		return replyOK, nil, nil
	case '-':
		return replyError, body, nil
	case '$':
		n, ok := parseInt(body)
		if !ok {
			return replyError, nil, errRESP
		}
		if n < 0 {
			return replyMiss, nil, nil
		}
		if _, err := r.Discard(n + 2); err != nil {
			return replyError, nil, err
		}
		return replyValue, nil, nil
	case '*':
		n, ok := parseInt(body)
		if !ok {
			return replyError, nil, errRESP
		}
		if n < 0 {
			return replyConflict, nil, nil // nil array: EXEC aborted by WATCH
		}
		rep := replyOK
		for i := 0; i < n; i++ {
			er, _, err := p.readReply(r)
			if err != nil {
				return replyError, nil, err
			}
			if er == replyError {
				rep = replyError
			}
		}
		return rep, nil, nil
	}
	return replyError, nil, errRESP
}

// parseInt parses a decimal integer with an optional minus sign without
// allocating.
func parseInt(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg, b = true, b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' || n > (1<<31) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
