package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

// Record kinds: the first byte of every payload.
const (
	// RecCommit is a log record: one commit.
	RecCommit = 1
	// RecSnapBegin starts a snapshot: the timestamp it holds the state at.
	RecSnapBegin = 2
	// RecSnapPairs is a batch of a snapshot's keys and values.
	RecSnapPairs = 3
	// RecSnapEnd ends a snapshot: its timestamp again and its key count.
	RecSnapEnd = 4
)

// Write operations inside a commit record.
const (
	OpPut    = 1
	OpDelete = 2
)

// ErrPayload is returned (wrapped) for a payload that passed its checksum
// but does not decode: a bug or a file from an incompatible writer.
var ErrPayload = errors.New("wal: malformed record payload")

// Write is one write of a commit: a put of Value, or a delete.
type Write struct {
	Key, Value string
	Delete     bool
	// ExpireAt is the absolute expiry time of a put, in Unix nanoseconds;
	// 0 means none.
	ExpireAt int64
}

// Commit is a decoded commit record.
type Commit struct {
	TS     uint64
	Writes []Write
}

// AppendCommitHeader appends the start of a commit record's payload: the
// kind, the commit timestamp and the number of writes that follow.
func AppendCommitHeader(dst []byte, ts uint64, writes int) []byte {
	dst = append(dst, RecCommit)
	dst = binary.AppendUvarint(dst, ts)
	return binary.AppendUvarint(dst, uint64(writes))
}

// AppendPut appends a put of key to value, expiring at expireAt (Unix
// nanoseconds, 0 for never).
func AppendPut(dst []byte, key, value string, expireAt int64) []byte {
	dst = append(dst, OpPut)
	dst = binary.AppendUvarint(dst, uint64(expireAt))
	dst = appendString(dst, key)
	return appendString(dst, value)
}

// AppendDelete appends a delete of key.
func AppendDelete(dst []byte, key string) []byte {
	dst = append(dst, OpDelete)
	dst = binary.AppendUvarint(dst, 0)
	return appendString(dst, key)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads the fields of a payload. Strings are views of the
// payload, not copies.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrPayload, what)
	}
}

func (d *decoder) byte1() byte {
	if len(d.p) == 0 {
		d.fail("truncated")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.p)) {
		d.fail("string past the end")
		return ""
	}
	b := d.p[:n]
	d.p = d.p[n:]
	if n == 0 {
		return ""
	}
	return unsafe.String(&b[0], n)
}

func (d *decoder) end() error {
	if d.err == nil && len(d.p) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// DecodeCommit decodes a commit record's payload into c, reusing
// c.Writes. The strings are views of payload: valid while it is.
func DecodeCommit(payload []byte, c *Commit) error {
	d := decoder{p: payload}
	if k := d.byte1(); d.err == nil && k != RecCommit {
		return fmt.Errorf("%w: record kind %d in a log", ErrPayload, k)
	}
	c.TS = d.uvarint()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.p)) { // every write takes bytes
		d.fail("write count past the end")
	}
	c.Writes = c.Writes[:0]
	for i := uint64(0); i < n && d.err == nil; i++ {
		var w Write
		switch op := d.byte1(); op {
		case OpPut:
			w.ExpireAt = int64(d.uvarint())
			w.Key, w.Value = d.str(), d.str()
		case OpDelete:
			d.uvarint()
			w.Key, w.Delete = d.str(), true
		default:
			d.fail(fmt.Sprintf("write op %d", op))
		}
		c.Writes = append(c.Writes, w)
	}
	if c.TS == 0 {
		d.fail("commit timestamp 0")
	}
	return d.end()
}

// Pair is one key of a snapshot.
type Pair struct {
	Key, Value string
	ExpireAt   int64
}

// AppendSnapBegin appends the payload of a snapshot's first record.
func AppendSnapBegin(dst []byte, ts uint64) []byte {
	return binary.AppendUvarint(append(dst, RecSnapBegin), ts)
}

// AppendSnapEnd appends the payload of a snapshot's last record.
func AppendSnapEnd(dst []byte, ts uint64, count uint64) []byte {
	dst = binary.AppendUvarint(append(dst, RecSnapEnd), ts)
	return binary.AppendUvarint(dst, count)
}

// AppendSnapPairsHeader starts the payload of a pairs record of n pairs;
// append each with AppendSnapPair.
func AppendSnapPairsHeader(dst []byte, n int) []byte {
	return binary.AppendUvarint(append(dst, RecSnapPairs), uint64(n))
}

// AppendSnapPair appends one pair of a pairs record.
func AppendSnapPair(dst []byte, key, value string, expireAt int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(expireAt))
	dst = appendString(dst, key)
	return appendString(dst, value)
}
