package wal

import (
	"errors"
	"fmt"
	"io"
)

// snapshotChunk is the payload size at which a pairs record is closed.
const snapshotChunk = 64 << 10

// SnapshotWriter streams a snapshot to a temporary file; Commit makes it
// the snapshot of its timestamp (fsync, rename, fsync of the directory).
// Memory use is one chunk, whatever the snapshot's size.
type SnapshotWriter struct {
	fs    FS
	dir   string
	ts    uint64
	f     File
	buf   []byte // framed records not yet written
	pairs []byte // the open pairs record's pairs
	n     int    // pairs in it
	count uint64
	size  int64
}

// CreateSnapshot starts the snapshot of the state at ts in dir.
func CreateSnapshot(fs FS, dir string, ts uint64) (*SnapshotWriter, error) {
	f, err := fs.Create(Join(dir, SnapshotName(ts)+TempSuffix))
	if err != nil {
		return nil, err
	}
	w := &SnapshotWriter{fs: fs, dir: dir, ts: ts, f: f}
	w.buf = AppendFileHeader(w.buf, KindSnapshot)
	w.buf = AppendFrame(w.buf, AppendSnapBegin(nil, ts))
	return w, nil
}

// Add adds a key.
func (w *SnapshotWriter) Add(key, value string, expireAt int64) error {
	w.pairs = AppendSnapPair(w.pairs, key, value, expireAt)
	w.n++
	w.count++
	if len(w.pairs) >= snapshotChunk {
		return w.flushPairs()
	}
	return nil
}

func (w *SnapshotWriter) flushPairs() error {
	if w.n > 0 {
		var off int
		w.buf, off = BeginFrame(w.buf)
		w.buf = AppendSnapPairsHeader(w.buf, w.n)
		w.buf = append(w.buf, w.pairs...)
		FinishFrame(w.buf, off)
		w.pairs, w.n = w.pairs[:0], 0
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	w.buf = w.buf[:0]
	return err
}

// Commit writes the end record, syncs the file, renames it to its final
// name and syncs the directory. It returns the snapshot's size.
func (w *SnapshotWriter) Commit() (int64, error) {
	if err := w.flushPairs(); err != nil {
		return 0, err
	}
	w.buf = AppendFrame(w.buf, AppendSnapEnd(nil, w.ts, w.count))
	if err := w.flushPairs(); err != nil {
		return 0, err
	}
	if err := w.f.Sync(); err != nil {
		return 0, err
	}
	if err := w.f.Close(); err != nil {
		return 0, err
	}
	name := Join(w.dir, SnapshotName(w.ts))
	if err := w.fs.Rename(name+TempSuffix, name); err != nil {
		return 0, err
	}
	return w.size, w.fs.SyncDir(w.dir)
}

// Abort closes and removes the temporary file.
func (w *SnapshotWriter) Abort() {
	w.f.Close()
	w.fs.Remove(Join(w.dir, SnapshotName(w.ts)+TempSuffix))
}

// ErrSnapshot is wrapped by the errors of a snapshot that does not read
// whole.
var ErrSnapshot = errors.New("wal: bad snapshot")

// ReadSnapshot reads the snapshot in r and calls fn for each key (its
// strings valid during the call only). It returns the snapshot's
// timestamp. A snapshot is whole or an error: it must begin with its
// begin record and end with its end record, whose count matches.
func ReadSnapshot(r io.Reader, fn func(Pair) error) (ts uint64, err error) {
	rd, err := NewReader(r, KindSnapshot)
	if err != nil {
		return 0, err
	}
	var count uint64
	began, ended := false, false
	for {
		p, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
		if ended {
			return 0, fmt.Errorf("%w: records after the end at offset %d", ErrSnapshot, rd.Offset())
		}
		d := decoder{p: p}
		kind := d.byte1()
		switch {
		case kind == RecSnapBegin && !began:
			ts = d.uvarint()
			began = true
		case kind == RecSnapPairs && began:
			n := d.uvarint()
			for i := uint64(0); i < n && d.err == nil; i++ {
				exp := int64(d.uvarint())
				k, v := d.str(), d.str()
				if d.err == nil {
					if err := fn(Pair{Key: k, Value: v, ExpireAt: exp}); err != nil {
						return 0, err
					}
				}
			}
			count += n
		case kind == RecSnapEnd && began:
			if t, n := d.uvarint(), d.uvarint(); d.err == nil && (t != ts || n != count) {
				return 0, fmt.Errorf("%w: end record says ts %d, %d keys; read ts %d, %d keys", ErrSnapshot, t, n, ts, count)
			}
			ended = true
		default:
			d.fail(fmt.Sprintf("record kind %d out of place", kind))
		}
		if err := d.end(); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
	}
	if !ended {
		return 0, fmt.Errorf("%w: no end record", ErrSnapshot)
	}
	return ts, nil
}
