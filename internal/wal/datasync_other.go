//go:build !linux

package wal

import "os"

// wrapFile returns f: Sync is the operating system's fsync.
func wrapFile(f *os.File) File { return f }
