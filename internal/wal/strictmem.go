package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"sync"
	"time"
)

// StrictMem is an in-memory FS that keeps, like a disk after a power
// loss, only what was synced: Crash drops every byte written to a file
// since its last Sync, and every creation, rename and removal since the
// directory's last SyncDir (in the spirit of Pebble's vfs.NewStrictMem).
// It can also fail: FailAfter makes every mutating operation fail from
// the n-th one on, as a crash in the middle of a sequence of steps does,
// and FailSyncs makes Sync fail, as a full or broken disk does.
//
// All names are taken as given (one flat namespace of paths); a
// directory exists once MkdirAll has named it.
type StrictMem struct {
	mu      sync.Mutex
	dirs    map[string]bool
	files   map[string]*memInode // the current names
	durable map[string]*memInode // the names as of the last SyncDir
	locks   map[string]bool

	failAfter int // mutating operations left before failing; -1: never
	failSync  bool
	// syncGate, when not nil, holds every Sync until it is closed (see
	// HoldSyncs).
	syncGate chan struct{}
}

type memInode struct {
	data   []byte
	synced []byte
	mtime  time.Time // last Create or Write
}

// ErrInjected is the error of the operations StrictMem fails on purpose.
var ErrInjected = errors.New("injected failure")

// NewStrictMem returns an empty StrictMem.
func NewStrictMem() *StrictMem {
	return &StrictMem{dirs: map[string]bool{}, files: map[string]*memInode{}, durable: map[string]*memInode{}, locks: map[string]bool{}, failAfter: -1}
}

// MkdirAll makes dir exist (durably).
func (m *StrictMem) MkdirAll(dir string) {
	m.mu.Lock()
	m.dirs[path.Clean(dir)] = true
	m.mu.Unlock()
}

// FailAfter makes the n+1-th mutating operation from now (write, sync,
// create, truncate, rename, remove) and every one after it fail with
// ErrInjected; n < 0 stops failing.
func (m *StrictMem) FailAfter(n int) {
	m.mu.Lock()
	m.failAfter = n
	m.mu.Unlock()
}

// FailSyncs makes every Sync and SyncDir fail with ErrInjected (the data
// stays unsynced), or stops that.
func (m *StrictMem) FailSyncs(fail bool) {
	m.mu.Lock()
	m.failSync = fail
	m.mu.Unlock()
}

// HoldSyncs makes every file Sync from now on wait, before it syncs
// anything, until HoldSyncs(false): a disk whose flushes take as long as
// a test needs, so that it can look at what is answered while commits are
// written but not yet synced. HoldSyncs(false) lets the waiting Syncs go
// on.
func (m *StrictMem) HoldSyncs(hold bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case hold && m.syncGate == nil:
		m.syncGate = make(chan struct{})
	case !hold && m.syncGate != nil:
		close(m.syncGate)
		m.syncGate = nil
	}
}

// Crash forgets everything that was not synced, stops injecting
// failures and releases every lock, as a machine that lost power and
// rebooted. Files still open keep writing into their old, forgotten
// contents.
func (m *StrictMem) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	files := make(map[string]*memInode, len(m.durable))
	seen := map[*memInode]*memInode{}
	for name, ino := range m.durable {
		n, ok := seen[ino]
		if !ok {
			n = &memInode{data: bytes.Clone(ino.synced), synced: bytes.Clone(ino.synced), mtime: ino.mtime}
			seen[ino] = n
		}
		files[name] = n
	}
	m.files = files
	m.durable = make(map[string]*memInode, len(files))
	for k, v := range files {
		m.durable[k] = v
	}
	m.locks = map[string]bool{}
	m.failAfter = -1
	m.failSync = false
}

// Size returns the current size of a file, or -1 when it does not exist.
func (m *StrictMem) Size(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ino, ok := m.files[name]; ok {
		return int64(len(ino.data))
	}
	return -1
}

// mutate counts one mutating operation. Requires m.mu.
func (m *StrictMem) mutate() error {
	if m.failAfter == 0 {
		return ErrInjected
	}
	if m.failAfter > 0 {
		m.failAfter--
	}
	return nil
}

func (m *StrictMem) checkDir(name string) error {
	if !m.dirs[path.Dir(name)] {
		return &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return nil
}

// Create implements FS.
func (m *StrictMem) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkDir(name); err != nil {
		return nil, err
	}
	if err := m.mutate(); err != nil {
		return nil, err
	}
	ino, ok := m.files[name]
	if ok {
		ino.data = nil
	} else {
		ino = &memInode{}
		m.files[name] = ino
	}
	ino.mtime = time.Now()
	return &memFile{m: m, ino: ino}, nil
}

// OpenWrite implements FS.
func (m *StrictMem) OpenWrite(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.files[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return &memFile{m: m, ino: ino}, nil
}

// Open implements FS.
func (m *StrictMem) Open(name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.files[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(ino.data))), nil
}

// Truncate implements FS.
func (m *StrictMem) Truncate(name string, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.files[name]
	if !ok {
		return &os.PathError{Op: "truncate", Path: name, Err: os.ErrNotExist}
	}
	if err := m.mutate(); err != nil {
		return err
	}
	if size < int64(len(ino.data)) {
		ino.data = ino.data[:size]
	}
	ino.synced = bytes.Clone(ino.data)
	return nil
}

// Rename implements FS.
func (m *StrictMem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.files[oldname]
	if !ok {
		return &os.PathError{Op: "rename", Path: oldname, Err: os.ErrNotExist}
	}
	if err := m.mutate(); err != nil {
		return err
	}
	delete(m.files, oldname)
	m.files[newname] = ino
	return nil
}

// Remove implements FS.
func (m *StrictMem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; !ok {
		return &os.PathError{Op: "remove", Path: name, Err: os.ErrNotExist}
	}
	if err := m.mutate(); err != nil {
		return err
	}
	delete(m.files, name)
	return nil
}

// List implements FS.
func (m *StrictMem) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = path.Clean(dir)
	if !m.dirs[dir] {
		return nil, &os.PathError{Op: "open", Path: dir, Err: os.ErrNotExist}
	}
	var names []string
	for name := range m.files {
		if path.Dir(name) == dir {
			names = append(names, path.Base(name))
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (m *StrictMem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mutate(); err != nil {
		return err
	}
	if m.failSync {
		return fmt.Errorf("syncdir %s: %w", dir, ErrInjected)
	}
	dir = path.Clean(dir)
	for name := range m.durable {
		if path.Dir(name) == dir {
			delete(m.durable, name)
		}
	}
	for name, ino := range m.files {
		if path.Dir(name) == dir {
			m.durable[name] = ino
		}
	}
	return nil
}

// Lock implements FS.
func (m *StrictMem) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkDir(name); err != nil {
		return nil, err
	}
	if m.locks[name] {
		return nil, fmt.Errorf("%s: %w", name, ErrLocked)
	}
	m.locks[name] = true
	return memLock{m, name}, nil
}

// ModTime implements FS.
func (m *StrictMem) ModTime(name string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, ok := m.files[name]
	if !ok {
		return time.Time{}, &os.PathError{Op: "stat", Path: name, Err: os.ErrNotExist}
	}
	return ino.mtime, nil
}

type memLock struct {
	m    *StrictMem
	name string
}

func (l memLock) Close() error {
	l.m.mu.Lock()
	delete(l.m.locks, l.name)
	l.m.mu.Unlock()
	return nil
}

type memFile struct {
	m   *StrictMem
	ino *memInode
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.mutate(); err != nil {
		// A crash in the middle of a write leaves part of it.
		half := len(p) / 2
		f.ino.data = append(f.ino.data, p[:half]...)
		return half, err
	}
	f.ino.data = append(f.ino.data, p...)
	f.ino.mtime = time.Now()
	return len(p), nil
}

// WriteAt writes p at off, extending the file with zeros if off is past
// its end.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	ino := f.ino
	if off < int64(len(ino.synced)) && len(ino.synced) > 0 && len(ino.data) > 0 && &ino.synced[0] == &ino.data[0] {
		// The synced contents share data's array (see Sync): copy it
		// before overwriting.
		ino.data = bytes.Clone(ino.data)
	}
	err := f.m.mutate()
	if err != nil {
		p = p[:len(p)/2] // a crash in the middle of a write leaves part of it
	}
	if end := off + int64(len(p)); end > int64(len(ino.data)) {
		ino.data = append(ino.data, make([]byte, end-int64(len(ino.data)))...)
	}
	copy(ino.data[off:], p)
	ino.mtime = time.Now()
	return len(p), err
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	if gate := f.m.syncGate; gate != nil {
		f.m.mu.Unlock()
		<-gate
		f.m.mu.Lock()
	}
	defer f.m.mu.Unlock()
	if err := f.m.mutate(); err != nil {
		return err
	}
	if f.m.failSync {
		return fmt.Errorf("fsync: %w", ErrInjected)
	}
	// The synced contents share data's array until something
	// overwrites it (WriteAt copies it first; Write only appends, Create
	// and Truncate replace or clone).
	f.ino.synced = f.ino.data[:len(f.ino.data):len(f.ino.data)]
	return nil
}

func (f *memFile) Close() error { return nil }
