package kvstore

import (
	"errors"
	"fmt"
	"io"

	"github.com/kvd-dev/kvstore/internal/wal"
)

// Open returns a durable Store that keeps its data in the directory dir,
// which must exist: every commit is appended to a commit log there, synced
// as WithSync says, and compacted into snapshots in the background (see
// Compact). Open first recovers what dir holds: the newest snapshot, then
// the log after it, record by record, each commit all or nothing and in
// commit order. A torn tail of the log (what a crash in the middle of a
// write leaves) is cut off, with a log line (see WithStoreLogger); damage
// before the tail makes Open fail with an error naming the file and the
// offset, unless WithRecoverTruncate is given.
//
// A directory is used by one Store at a time: Open takes a lock (the file
// LOCK in dir, with flock), and a second Open of the same directory, by
// this process or another, fails until Close. Call Close when done: it
// syncs every commit.
//
// The files and their format are described in the README.
func Open(dir string, opts ...StoreOption) (*Store, error) {
	s := New(opts...)
	s.expiry.held = true // until the log is open (nothing runs yet)
	fs := s.cfg.fs
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("kvstore: open data directory: %w", err)
	}
	lock, err := fs.Lock(wal.Join(dir, wal.LockName))
	if err != nil {
		if errors.Is(err, wal.ErrLocked) {
			return nil, fmt.Errorf("kvstore: data directory %s is in use by another store (%w)", dir, err)
		}
		return nil, fmt.Errorf("kvstore: lock data directory: %w", err)
	}
	s.dur = &durability{fs: fs, dir: dir, lock: lock}
	if err := s.recover(wal.ParseDir(names)); err != nil {
		lock.Close()
		return nil, err
	}
	s.releaseExpiry()
	return s, nil
}

// recover loads the newest snapshot and replays the log after it, then
// starts the log.
func (s *Store) recover(d wal.Dir) error {
	fs, dir, logger := s.dur.fs, s.dur.dir, s.cfg.logger
	for _, name := range d.Temp {
		if err := fs.Remove(wal.Join(dir, name)); err != nil {
			return fmt.Errorf("kvstore: remove unfinished %s: %w", name, err)
		}
	}

	var snapTs uint64
	if n := len(d.Snapshots); n > 0 {
		snapTs = d.Snapshots[n-1]
		if err := s.loadSnapshot(snapTs); err != nil {
			return err
		}
	}

	// Replay the segments not wholly covered by the snapshot. Segment i
	// holds the commits from Segments[i] up to the next one's first.
	segs := d.Segments
	for len(segs) > 1 && segs[1] <= snapTs+1 {
		segs = segs[1:]
	}
	var (
		rec      wal.Commit
		lastName string
		lastSize int64 = -1 // valid size of the last segment; -1: none usable
		older    int64      // valid bytes of the segments before the last
	)
	for i, first := range segs {
		name := wal.Join(dir, wal.SegmentName(first))
		last := i == len(segs)-1
		if first > s.oracle.committed.Load()+1 {
			return fmt.Errorf("kvstore: %s: the log has a gap: it starts at commit %d, the data before it ends at %d", name, first, s.oracle.committed.Load())
		}
		valid, err := s.replaySegment(name, snapTs, &rec)
		var ce *wal.CorruptError
		switch {
		case err == nil:
		case errors.As(err, &ce) && (ce.Tail && last || s.cfg.recoverTruncate):
			if ce.Tail && last {
				logger.Warn("kvstore: cutting off the torn tail of the log", "file", name, "offset", ce.Offset, "reason", ce.Reason)
			} else {
				logger.Warn("kvstore: damaged log: starting from its valid prefix (recover-truncate)", "file", name, "offset", ce.Offset, "reason", ce.Reason)
			}
			if err := fs.Truncate(name, valid); err != nil {
				return fmt.Errorf("kvstore: cut %s at %d: %w", name, valid, err)
			}
			if !last {
				for _, later := range segs[i+1:] {
					n := wal.Join(dir, wal.SegmentName(later))
					if err := fs.Rename(n, n+".damaged"); err != nil {
						return fmt.Errorf("kvstore: set aside %s: %w", n, err)
					}
					logger.Warn("kvstore: log segment after the damage set aside", "file", n+".damaged")
				}
				if err := fs.SyncDir(dir); err != nil {
					return fmt.Errorf("kvstore: sync %s: %w", dir, err)
				}
				last = true
			}
		case errors.As(err, &ce):
			return fmt.Errorf("kvstore: %s: %w (the log after it is not replayed; WithRecoverTruncate, kvd -recover-truncate, starts from the records before it)", name, err)
		default:
			return fmt.Errorf("kvstore: %s: %w", name, err)
		}
		if last {
			lastName, lastSize = name, valid
			break
		}
		older += valid
	}

	// Append to the last segment if it has a header; else start one.
	committed := s.oracle.committed.Load()
	var f wal.File
	var err error
	var segFirst uint64
	if lastSize >= wal.FileHeaderSize {
		f, err = fs.OpenWrite(lastName)
		segFirst = segs[len(segs)-1]
	} else {
		if lastSize >= 0 {
			if err := fs.Remove(lastName); err != nil {
				return fmt.Errorf("kvstore: remove empty %s: %w", lastName, err)
			}
		}
		segFirst = committed + 1
		lastName = wal.Join(dir, wal.SegmentName(segFirst))
		lastSize = wal.FileHeaderSize
		f, err = fs.Create(lastName)
		if err == nil {
			_, err = f.Write(wal.AppendFileHeader(nil, wal.KindLog))
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = fs.SyncDir(dir)
		}
	}
	if err != nil {
		return fmt.Errorf("kvstore: open log %s: %w", lastName, err)
	}
	s.dur.lastSnapTs.Store(snapTs)
	if err := s.dropCovered(snapTs); err != nil {
		f.Close()
		return err
	}
	s.dur.log = wal.NewLog(wal.Options{FS: fs, Dir: dir, Mode: s.walMode(), OnWrite: s.autoCompact, OlderBytes: older, Reserve: s.cfg.logReserve}, f, lastSize, segFirst, committed)
	return nil
}

func (s *Store) walMode() wal.Mode {
	switch s.cfg.sync {
	case SyncAlways:
		return wal.SyncEach
	case SyncNever:
		return wal.SyncNone
	}
	return wal.SyncInterval
}

// loadSnapshot installs the snapshot at ts.
func (s *Store) loadSnapshot(ts uint64) error {
	name := wal.Join(s.dur.dir, wal.SnapshotName(ts))
	r, err := s.dur.fs.Open(name)
	if err != nil {
		return fmt.Errorf("kvstore: open snapshot: %w", err)
	}
	defer r.Close()
	var n int64
	cr := &countingReader{r: r}
	got, err := wal.ReadSnapshot(cr, func(p wal.Pair) error {
		h := s.hash(p.Key)
		sh := &s.shards[shardIndex(h)]
		sh.lock()
		if s.install(sh, p.Key, h, p.Value, p.ExpireAt, ts, nil) {
			n++
		}
		sh.unlock()
		return nil
	})
	if err == nil && got != ts {
		err = fmt.Errorf("holds the state at %d, its name says %d", got, ts)
	}
	if err != nil {
		return fmt.Errorf("kvstore: snapshot %s: %w", name, err)
	}
	s.live.Add(n)
	s.oracle.committed.Store(ts)
	s.dur.lastSnapSize.Store(cr.n)
	if mt, err := s.dur.fs.ModTime(name); err == nil {
		s.dur.lastSnapUnix.Store(mt.Unix())
	}
	return nil
}

// replaySegment applies the commits of one segment after snapTs and
// returns the size of its valid prefix, with a *wal.CorruptError where
// the valid prefix ends before the end of the file.
func (s *Store) replaySegment(name string, snapTs uint64, rec *wal.Commit) (valid int64, err error) {
	r, err := s.dur.fs.Open(name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	rd, err := wal.NewReader(r, wal.KindLog)
	if err != nil {
		return 0, err
	}
	for {
		p, err := rd.Next()
		if err == io.EOF {
			return rd.Offset(), nil
		}
		if err != nil {
			return rd.Offset(), err
		}
		if err := wal.DecodeCommit(p, rec); err != nil {
			return rd.Offset(), fmt.Errorf("record at offset %d: %w", rd.Offset(), err)
		}
		if rec.TS <= snapTs {
			continue
		}
		if err := s.apply(rec); err != nil {
			return rd.Offset(), fmt.Errorf("record at offset %d: %w", rd.Offset(), err)
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
