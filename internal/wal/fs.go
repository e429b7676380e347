package wal

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// FS is the file-system layer the log and snapshots use: just the
// operations they need, so that tests can substitute StrictMem, which
// loses what was not synced.
type FS interface {
	// Create creates (or truncates) a file for writing.
	Create(name string) (File, error)
	// OpenWrite opens an existing file for writing (at offsets: see
	// File.WriteAt).
	OpenWrite(name string) (File, error)
	// Open opens a file for reading.
	Open(name string) (io.ReadCloser, error)
	// Truncate cuts a file to size bytes, durably (it syncs the file).
	Truncate(name string, size int64) error
	// Rename renames a file; durable once the directory is synced.
	Rename(oldname, newname string) error
	// Remove removes a file; durable once the directory is synced.
	Remove(name string) error
	// List returns the names of the files in dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes the directory's entries (creations, renames,
	// removals) durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the file name (created if missing),
	// held until the returned Closer is closed; it fails at once if
	// another process holds it.
	Lock(name string) (io.Closer, error)
	// ModTime returns when a file was last written.
	ModTime(name string) (time.Time, error)
}

// File is a file open for writing: Write writes at the file's offset
// (from 0 after Create), WriteAt at a given one.
type File interface {
	io.Writer
	io.WriterAt
	// Sync makes what was written durable.
	Sync() error
	Close() error
}

// OS is the FS of the operating system.
type OS struct{}

// Create implements FS.
func (OS) Create(name string) (File, error) {
	return openFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
}

// OpenWrite implements FS.
func (OS) OpenWrite(name string) (File, error) {
	return openFile(name, os.O_WRONLY, 0)
}

// openFile opens a file to write, whose Sync is fdatasync where there is
// one (see wrapFile).
func openFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return wrapFile(f), nil
}

// Open implements FS.
func (OS) Open(name string) (io.ReadCloser, error) { return os.Open(name) }

// Truncate implements FS.
func (OS) Truncate(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// List implements FS.
func (OS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock implements FS.
func (OS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ModTime implements FS.
func (OS) ModTime(name string) (time.Time, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// ErrLocked is returned (wrapped) by Lock when another process holds the
// lock.
var ErrLocked = errors.New("locked by another process")

// join is filepath.Join, for the names the FS is given.
func join(dir, name string) string { return filepath.Join(dir, name) }
