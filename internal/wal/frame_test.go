package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

// logFile returns a log file holding the given commits.
func logFile(commits ...Commit) []byte {
	b := AppendFileHeader(nil, KindLog)
	for _, c := range commits {
		p := AppendCommitHeader(nil, c.TS, len(c.Writes))
		for _, w := range c.Writes {
			if w.Delete {
				p = AppendDelete(p, w.Key)
			} else {
				p = AppendPut(p, w.Key, w.Value, w.ExpireAt)
			}
		}
		b = AppendFrame(b, p)
	}
	return b
}

func sampleCommits(n int) []Commit {
	var cs []Commit
	for i := range n {
		cs = append(cs, Commit{TS: uint64(i + 1), Writes: []Write{
			{Key: fmt.Sprint("k", i), Value: fmt.Sprint("value ", i), ExpireAt: int64(i * 1000)},
			{Key: fmt.Sprint("d", i), Delete: true},
		}})
	}
	return cs
}

// readAll decodes every record of a log file.
func readAll(data []byte) ([]Commit, int64, error) {
	rd, err := NewReader(bytes.NewReader(data), KindLog)
	if err != nil {
		return nil, 0, err
	}
	var out []Commit
	for {
		p, err := rd.Next()
		if err == io.EOF {
			return out, rd.Offset(), nil
		}
		if err != nil {
			return out, rd.Offset(), err
		}
		var c Commit
		if err := DecodeCommit(p, &c); err != nil {
			return out, rd.Offset(), err
		}
		ws := make([]Write, len(c.Writes))
		for i, w := range c.Writes {
			ws[i] = Write{Key: string([]byte(w.Key)), Value: string([]byte(w.Value)), Delete: w.Delete, ExpireAt: w.ExpireAt}
		}
		c.Writes = ws
		out = append(out, c)
	}
}

func TestRoundTrip(t *testing.T) {
	want := sampleCommits(50)
	got, off, err := readAll(logFile(want...))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("decoded %v\nwant %v", got, want)
	}
	if off != int64(len(logFile(want...))) {
		t.Errorf("offset %d at the end", off)
	}
}

func TestHeaderChecked(t *testing.T) {
	data := logFile(sampleCommits(1)...)
	if _, err := NewReader(bytes.NewReader(data), KindSnapshot); !errors.Is(err, ErrHeader) {
		t.Errorf("log read as a snapshot: %v", err)
	}
	data[6] = 9 // version
	if _, err := NewReader(bytes.NewReader(data), KindLog); !errors.Is(err, ErrHeader) {
		t.Errorf("version 9: %v", err)
	}
}

// TestTornTailVersusDamage: every cut of the last record, and garbage
// after the last whole record, is a torn tail; a damaged record with
// whole records after it is not. (Zero bytes up to the end are not
// garbage: see TestZeroTailIsCleanEnd.)
func TestTornTailVersusDamage(t *testing.T) {
	cs := sampleCommits(5)
	full := logFile(cs...)
	prefix := logFile(cs[:4]...)
	for cut := len(prefix) + 1; cut < len(full); cut++ {
		got, off, err := readAll(full[:cut])
		var ce *CorruptError
		if !errors.As(err, &ce) || !ce.Tail || off != int64(len(prefix)) || len(got) != 4 {
			t.Fatalf("cut at %d: %d records, offset %d, err %v; want a torn tail at %d after 4", cut, len(got), off, err, len(prefix))
		}
	}
	for _, garbage := range [][]byte{{1}, append(make([]byte, 100), 1), []byte("garbage garbage garbage"), {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5}} {
		_, off, err := readAll(append(bytes.Clone(full), garbage...))
		var ce *CorruptError
		if !errors.As(err, &ce) || !ce.Tail || off != int64(len(full)) {
			t.Errorf("garbage %q: offset %d, err %v; want a torn tail at %d", garbage, off, err, len(full))
		}
	}
	// Damage in the middle: a flipped byte in the second record.
	second := len(logFile(cs[:1]...))
	for _, at := range []int{second, second + 3, second + FrameHeaderSize + 1} {
		d := bytes.Clone(full)
		d[at] ^= 0x40
		got, off, err := readAll(d)
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Tail || off != int64(second) || len(got) != 1 {
			t.Errorf("flip at %d: %d records, offset %d, err %v; want damage at %d", at, len(got), off, err, second)
		}
	}
}

// decoderProperty is the fuzz property: reading arbitrary bytes never
// panics, and every payload returned sits in the input, framed, with its
// checksum matching. It returns what breaks it.
func decoderProperty(data []byte, next func(*Reader) ([]byte, error)) error {
	rd, err := NewReader(bytes.NewReader(data), KindLog)
	if err != nil {
		return nil
	}
	for range len(data) + 1 {
		start := rd.Offset()
		p, err := next(rd)
		if err != nil {
			var ce *CorruptError
			if err != io.EOF && !errors.As(err, &ce) {
				return fmt.Errorf("error %v is neither EOF nor a CorruptError", err)
			}
			return nil
		}
		end := start + FrameHeaderSize + int64(len(p))
		if end > int64(len(data)) || !bytes.Equal(data[start+FrameHeaderSize:end], p) {
			return fmt.Errorf("payload at %d is not the input's bytes", start)
		}
		if binary.LittleEndian.Uint32(data[start+4:]) != Checksum(p) {
			return fmt.Errorf("record at %d returned with a bad checksum", start)
		}
		var c Commit
		_ = DecodeCommit(p, &c) // must not panic either
	}
	return errors.New("more records than bytes")
}

func FuzzReader(f *testing.F) {
	f.Add(logFile(sampleCommits(3)...))
	f.Add(AppendFileHeader(nil, KindLog))
	d := logFile(sampleCommits(2)...)
	d[len(d)-1] ^= 1
	f.Add(d)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Half of the inputs get a valid header, so that the fuzzer
		// explores the records.
		if len(data) > 0 && data[0]&1 == 0 {
			data = append(AppendFileHeader(nil, KindLog), data[1:]...)
		}
		if err := decoderProperty(data, (*Reader).Next); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFuzzPropertyCatchesNoChecksum shows the fuzz property failing on a
// decoder that does not verify checksums.
func TestFuzzPropertyCatchesNoChecksum(t *testing.T) {
	d := logFile(sampleCommits(2)...)
	d[len(d)-1] ^= 1
	broken := func(r *Reader) ([]byte, error) {
		var h [FrameHeaderSize]byte
		if _, err := io.ReadFull(r.r, h[:]); err != nil {
			return nil, io.EOF
		}
		p := make([]byte, binary.LittleEndian.Uint32(h[:]))
		if _, err := io.ReadFull(r.r, p); err != nil {
			return nil, io.EOF
		}
		r.off += int64(FrameHeaderSize + len(p))
		return p, nil // no checksum check: the bug
	}
	if decoderProperty(d, broken) == nil {
		t.Fatal("the property accepted a decoder that skips checksums")
	}
	if err := decoderProperty(d, (*Reader).Next); err != nil {
		t.Fatalf("the property rejected the real decoder: %v", err)
	}
}

// TestZeroTailIsCleanEnd: zero bytes from the end of the last whole record
// to the end of the file are space the writer reserved (Options.Reserve),
// the clean end of the log, however many; a cut record followed by zeros
// is still a torn tail, and zeros followed by a record are damage.
func TestZeroTailIsCleanEnd(t *testing.T) {
	cs := sampleCommits(5)
	full := logFile(cs...)
	for _, n := range []int{1, 7, 8, 9, 100, 1 << 20} {
		got, off, err := readAll(append(bytes.Clone(full), make([]byte, n)...))
		if err != nil || off != int64(len(full)) || len(got) != 5 {
			t.Errorf("%d zero bytes after the records: %d records, offset %d, err %v; want all 5 and the end at %d", n, len(got), off, err, len(full))
		}
	}
	prefix := logFile(cs[:4]...)
	for _, cut := range []int{len(prefix) + 3, len(prefix) + FrameHeaderSize + 2, len(full) - 1} {
		got, off, err := readAll(append(bytes.Clone(full[:cut]), make([]byte, 4096)...))
		var ce *CorruptError
		if !errors.As(err, &ce) || !ce.Tail || off != int64(len(prefix)) || len(got) != 4 {
			t.Errorf("record cut at %d, then zeros: %d records, offset %d, err %v; want a torn tail at %d", cut, len(got), off, err, len(prefix))
		}
	}
	d := append(append(bytes.Clone(prefix), make([]byte, 64)...), full[len(prefix):]...)
	got, off, err := readAll(d)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Tail || off != int64(len(prefix)) || len(got) != 4 {
		t.Errorf("zeros, then a record: %d records, offset %d, err %v; want damage at %d", len(got), off, err, len(prefix))
	}
}
