//go:build linux

package wal

import (
	"errors"
	"os"
	"syscall"
)

// dataSyncFile is an *os.File whose Sync is fdatasync(2), as Redis syncs
// its append-only file: it forces the data and the metadata needed to
// read it back (the size) to disk, and skips what a reader does not
// need (the modification time), which fsync would also write. The log
// and snapshot files are only appended to, and their names are made
// durable separately (SyncDir).
type dataSyncFile struct {
	*os.File
	fd int
}

// wrapFile returns f with Sync as fdatasync.
func wrapFile(f *os.File) File { return dataSyncFile{File: f, fd: int(f.Fd())} }

// Sync implements File with fdatasync.
func (f dataSyncFile) Sync() error {
	for {
		err := syscall.Fdatasync(f.fd)
		if !errors.Is(err, syscall.EINTR) {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
