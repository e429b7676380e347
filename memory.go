package kvstore

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// The store accounts, with cheap counters, for the memory it holds: each
// record (key and value) in a table or in a key's history, each older
// version, the slot arrays, the history and pinned-set entries, and the
// buffers of open transactions. The figures approximate what the Go
// allocator hands out for each object (its size class), so that they track
// the live heap; the garbage collector may let the process's memory grow
// beyond them until it collects (see GOGC and GOMEMLIMIT in package
// runtime/debug).

const (
	slotBytes    = int64(unsafe.Sizeof(slot{}))
	versionBytes = 48 // unsafe.Sizeof(version{}) rounded to its size class
	// histEntryBytes and pinnedEntryBytes are the per-entry costs of a
	// history map entry and a pinned-set entry, beyond the key's copy:
	// the map slot, its control bytes, and the string header.
	histEntryBytes   = 48
	pinnedEntryBytes = 32
	// writeBytes and readBytes are a transaction's cost per buffered write
	// and per recorded read, beyond the key's and value's bytes.
	writeBytes = int64(unsafe.Sizeof(item[write]{}))
	readBytes  = int64(unsafe.Sizeof(item[struct{}]{}))
	// txnReserve is how much of the store's accounted memory an open
	// transaction reserves at a time for its buffers, so that most of its
	// operations touch no shared counter.
	txnReserve = 4 << 10
)

// allocBytes approximates the memory the Go allocator uses for an object
// of n bytes: small objects are rounded up to their size class (classes
// are at most 1/8 apart), large ones to whole 8 KiB pages.
func allocBytes(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 256:
		return int64(n+15) &^ 15
	case n <= 32<<10:
		step := 1<<(bits.Len(uint(n-1))-1)/8 - 1
		return int64(n+step) &^ int64(step)
	}
	return int64(n+8191) &^ 8191
}

// recordBytes is the memory of a record holding a key of keyLen bytes and a
// value of valLen bytes.
func recordBytes(keyLen, valLen int) int64 { return allocBytes(recordHeader + keyLen + valLen) }

// expRecordBytes is recordBytes for a record that expires at exp (0:
// never), which then holds 8 more bytes.
func expRecordBytes(keyLen, valLen int, exp int64) int64 {
	if exp == 0 {
		return recordBytes(keyLen, valLen)
	}
	return allocBytes(recordHeader + keyLen + valLen + 8)
}

// orderedKeyBytes is the memory a key of keyLen bytes takes in its shard's
// ordered set (internal/ordered): its copy, and its string header in a
// block, which is between half and fully used (counted at 3/4).
func orderedKeyBytes(keyLen int) int64 { return allocBytes(keyLen) + 16*4/3 }

// footprint is the memory a key's versions hold, beyond its slot: its
// newest record, and for each older version the version and the record its
// value lives in, plus its history entry if it has one.
func footprint(keyLen int, e entry, hasHistory bool) int64 {
	n := expRecordBytes(keyLen, len(e.val), e.exp)
	if hasHistory {
		n += histEntryBytes + allocBytes(keyLen)
	}
	for v := e.older; v != nil; v = v.older {
		n += versionBytes
		if len(v.val) > 0 { // an empty value shares no record
			n += expRecordBytes(keyLen, len(v.val), v.exp)
		}
	}
	return n
}

// pinnedBytes is the memory of key's entry in a snapshot's pinned set.
func pinnedBytes(key string) int64 { return pinnedEntryBytes + allocBytes(len(key)) }

// MemoryUsage returns the bytes the store accounts for: its records (keys
// and values, newest and older versions), the slot arrays of its tables,
// the ordered sets of keys that listings walk,
// its bookkeeping of history kept for open transactions, and the buffers
// of open transactions (reserved a few KiB at a time). The figure follows
// the Go allocator's rounding, so it tracks the live heap the store holds;
// the process's resident memory is higher by what the garbage collector has
// not yet reclaimed, and by everything that is not the store. A store
// created WithMaxMemory refuses writes that would take MemoryUsage past its
// limit.
func (s *Store) MemoryUsage() int64 {
	return int64(unsafe.Sizeof(*s)) + s.oracle.mem.Load() + s.txnMem.Load()
}

// limited reports whether the store has a memory limit.
func (s *Store) limited() bool { return s.cfg.maxMemory > 0 }

// checkMemory returns an error wrapping ErrMemoryLimit when need more bytes
// would take the store past its limit.
func (s *Store) checkMemory(need int64) error {
	if used := s.MemoryUsage(); used+need > s.cfg.maxMemory {
		return fmt.Errorf("kvstore: write of %d bytes refused: the store holds %d bytes of its %d-byte limit: %w",
			need, used, s.cfg.maxMemory, ErrMemoryLimit)
	}
	return nil
}
