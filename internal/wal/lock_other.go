//go:build !unix

package wal

import "os"

// lockFile does nothing where flock is not available: the directory is
// not protected against a second process there.
func lockFile(*os.File) error { return nil }
