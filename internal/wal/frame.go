package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// FormatVersion is the version number written in every file header. A
// reader refuses files of another version.
const FormatVersion = 1

// Sizes of the fixed parts of a file.
const (
	// FileHeaderSize is the size of a file header: six bytes of magic and
	// the format version as a little-endian uint16.
	FileHeaderSize = 8
	// FrameHeaderSize is the size of a record's frame header: the payload
	// length and the payload's CRC-32C, both little-endian uint32s.
	FrameHeaderSize = 8
	// MaxPayload is the largest record payload a reader accepts; a larger
	// length is damage, not a record.
	MaxPayload = 1 << 30
)

// Kind tells which file a header starts.
type Kind int

// The kinds of files, by their magic.
const (
	// KindLog is a log segment ("KVDLOG"): commit records.
	KindLog Kind = iota
	// KindSnapshot is a snapshot ("KVDSNP"): a begin record, pair records
	// and an end record.
	KindSnapshot
)

var magics = [...]string{KindLog: "KVDLOG", KindSnapshot: "KVDSNP"}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C (Castagnoli) of p, as frames hold it.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// AppendFileHeader appends the header of a file of kind k.
func AppendFileHeader(dst []byte, k Kind) []byte {
	dst = append(dst, magics[k]...)
	return binary.LittleEndian.AppendUint16(dst, FormatVersion)
}

// AppendFrame appends payload framed as a record.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, Checksum(payload))
	return append(dst, payload...)
}

// BeginFrame reserves the frame header of a record whose payload the
// caller appends next; FinishFrame fills it in. It returns dst extended
// and the offset to pass to FinishFrame.
func BeginFrame(dst []byte) ([]byte, int) {
	return append(dst, make([]byte, FrameHeaderSize)...), len(dst)
}

// FinishFrame fills in the header reserved at off by BeginFrame, for the
// payload that follows it up to the end of buf.
func FinishFrame(buf []byte, off int) {
	payload := buf[off+FrameHeaderSize:]
	binary.LittleEndian.PutUint32(buf[off:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[off+4:], Checksum(payload))
}

// ErrHeader is returned (wrapped) for a file that does not start with the
// header of the expected kind and version.
var ErrHeader = errors.New("wal: bad file header")

// CorruptError describes where a file stops holding whole, valid records.
type CorruptError struct {
	// Offset is the offset of the first byte that is not part of a whole
	// valid record: the file's valid prefix ends there.
	Offset int64
	// Reason says what is wrong at Offset.
	Reason string
	// Tail is true when nothing after Offset is a valid record: the end
	// of the file is a torn (partial or garbage) write, which recovery
	// cuts off. False means damage with valid records after it.
	Tail bool
}

func (e *CorruptError) Error() string {
	kind := "damaged record"
	if e.Tail {
		kind = "torn tail"
	}
	return fmt.Sprintf("%s at offset %d: %s", kind, e.Offset, e.Reason)
}

// Reader decodes the records of one file, in order.
type Reader struct {
	r   *bufio.Reader
	off int64
	buf []byte
}

// NewReader checks the header of a file of kind k and returns a Reader
// positioned at its first record. An empty file, or one cut short inside
// its header, gives a Reader whose Next reports a torn tail at offset 0.
func NewReader(r io.Reader, k Kind) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 256<<10)}
	var h [FileHeaderSize]byte
	n, err := io.ReadFull(rd.r, h[:])
	if err != nil && n < FileHeaderSize {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return &Reader{r: bufio.NewReader(io.MultiReader()), off: -1}, nil
		}
		return nil, err
	}
	if string(h[:6]) != magics[k] {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrHeader, h[:6], magics[k])
	}
	if v := binary.LittleEndian.Uint16(h[6:]); v != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d, this build reads %d", ErrHeader, v, FormatVersion)
	}
	rd.off = FileHeaderSize
	return rd, nil
}

// Offset returns the offset just after the last record Next returned:
// the end of the file's valid prefix so far.
func (r *Reader) Offset() int64 { return max(r.off, 0) }

// Next returns the next record's payload, valid until the next call. At
// the clean end of the file (its end, or zero bytes up to its end) it
// returns io.EOF. Where the file stops
// holding whole valid records it returns a *CorruptError; another error
// is an I/O error. A payload is only ever returned whole and with a
// matching checksum.
func (r *Reader) Next() ([]byte, error) {
	if r.off < 0 {
		return nil, &CorruptError{Offset: 0, Reason: "file shorter than its header", Tail: true}
	}
	var h [FrameHeaderSize]byte
	n, err := io.ReadFull(r.r, h[:])
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return nil, r.corrupt(h[:n], "partial frame header")
	case err != nil:
		return nil, err
	}
	size := binary.LittleEndian.Uint32(h[:])
	sum := binary.LittleEndian.Uint32(h[4:])
	if size == 0 || size > MaxPayload {
		return nil, r.corrupt(h[:], fmt.Sprintf("bad record length %d", size))
	}
	p, err := r.readPayload(int(size))
	n = len(p)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return nil, r.corrupt(append(h[:], p[:n]...), fmt.Sprintf("record of %d bytes cut off after %d", size, n))
	case err != nil:
		return nil, err
	}
	p = p[:size]
	if Checksum(p) != sum {
		return nil, r.corrupt(append(h[:], p...), "checksum mismatch")
	}
	r.off += int64(FrameHeaderSize) + int64(size)
	return p, nil
}

// corrupt returns the CorruptError for the bad frame starting at r.off,
// whose bytes read so far are seen; it reads the rest of the file to
// tell a torn tail from damage.
//
// Zero bytes from r.off to the end of the file are not damage but space
// the log's writer reserved ahead (see Options.Reserve): corrupt then
// returns io.EOF, the clean end of the file.
func (r *Reader) corrupt(seen []byte, reason string) error {
	rest, err := io.ReadAll(r.r)
	if err != nil {
		return err
	}
	all := append(append([]byte(nil), seen...), rest...)
	if allZero(all) {
		return io.EOF
	}
	return &CorruptError{Offset: r.off, Reason: reason, Tail: !containsFrame(all[1:])}
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// containsFrame reports whether a valid frame starts at any offset of b.
func containsFrame(b []byte) bool {
	for i := 0; i+FrameHeaderSize < len(b); i++ {
		size := binary.LittleEndian.Uint32(b[i:])
		if size == 0 || int64(size) > int64(len(b)-i-FrameHeaderSize) {
			continue
		}
		p := b[i+FrameHeaderSize : i+FrameHeaderSize+int(size)]
		if Checksum(p) == binary.LittleEndian.Uint32(b[i+4:]) {
			return true
		}
	}
	return false
}

// readPayload reads size bytes into r.buf and returns them, or fewer
// with the error that stopped it. The buffer grows with the data that
// actually arrives, so a damaged length does not allocate a gigabyte.
func (r *Reader) readPayload(size int) ([]byte, error) {
	const step = 1 << 20
	p := r.buf[:0]
	for len(p) < size {
		n := min(size-len(p), step)
		if cap(p)-len(p) < n {
			np := make([]byte, len(p), max(2*cap(p), len(p)+n))
			copy(np, p)
			p = np
		}
		got, err := io.ReadFull(r.r, p[len(p):len(p)+n])
		p = p[:len(p)+got]
		if err != nil {
			r.buf = p[:0]
			return p, err
		}
	}
	r.buf = p[:0]
	return p, nil
}
