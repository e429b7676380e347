package wal

import (
	"fmt"
	"strings"
)

// File names in a data directory. Timestamps are 16 lowercase hex digits,
// so that names sort in timestamp order.
const (
	// LockName is the lock file that keeps a second process out.
	LockName = "LOCK"
	// segmentPrefix+ts+segmentSuffix: a log segment whose first record
	// has commit timestamp ts or later.
	segmentPrefix, segmentSuffix = "log-", ".wal"
	// snapshotPrefix+ts+snapshotSuffix: a snapshot of the state at ts.
	snapshotPrefix, snapshotSuffix = "snap-", ".snap"
	// TempSuffix ends files being written; recovery removes them.
	TempSuffix = ".tmp"
)

// SegmentName returns the name of the log segment starting at ts.
func SegmentName(ts uint64) string { return fmt.Sprintf("%s%016x%s", segmentPrefix, ts, segmentSuffix) }

// SnapshotName returns the name of the snapshot at ts.
func SnapshotName(ts uint64) string {
	return fmt.Sprintf("%s%016x%s", snapshotPrefix, ts, snapshotSuffix)
}

// Dir is the listing of a data directory.
type Dir struct {
	Segments  []uint64 // first timestamps, ascending
	Snapshots []uint64 // timestamps, ascending
	Temp      []string // unfinished files
	Other     []string // names that are none of these
}

// ParseDir sorts the names of a directory's files.
func ParseDir(names []string) Dir {
	var d Dir
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, TempSuffix):
			d.Temp = append(d.Temp, n)
		case parseTs(n, segmentPrefix, segmentSuffix, &d.Segments):
		case parseTs(n, snapshotPrefix, snapshotSuffix, &d.Snapshots):
		case n != LockName:
			d.Other = append(d.Other, n)
		}
	}
	return d
}

func parseTs(name, prefix, suffix string, into *[]uint64) bool {
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
		return false
	}
	hex := name[len(prefix) : len(name)-len(suffix)]
	var ts uint64
	if len(hex) != 16 {
		return false
	}
	if _, err := fmt.Sscanf(hex, "%016x", &ts); err != nil {
		return false
	}
	*into = append(*into, ts) // names come sorted, and so do timestamps
	return true
}

// Join returns dir/name.
func Join(dir, name string) string { return join(dir, name) }
