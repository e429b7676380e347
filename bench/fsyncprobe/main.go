//go:build linux

// Command fsyncprobe measures, on the file system of its -dir, the wall
// time and the CPU time of fdatasync after a small write, when appending
// to a file and when overwriting a file that was zero-filled and synced
// first (preallocated, as PostgreSQL's WAL segments are). Linux only.
//
//	go run ./fsyncprobe -dir /path/on/the/disk
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// run writes and fdatasyncs 1,500 bytes 3,000 times to name, appending or
// overwriting a preallocated file, and prints the cost per sync.
func run(name string, prealloc bool) {
	f, err := os.Create(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.Remove(name)
	if prealloc {
		z := make([]byte, 1<<20)
		for i := 0; i < 16; i++ {
			f.Write(z)
		}
		f.Sync()
		f.Seek(0, 0)
	}
	buf := make([]byte, 1500)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	t := time.Now()
	n := 3000
	for i := 0; i < n; i++ {
		f.Write(buf)
		syscall.Fdatasync(int(f.Fd()))
	}
	el := time.Since(t)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration((ru1.Utime.Nano() + ru1.Stime.Nano()) - (ru0.Utime.Nano() + ru0.Stime.Nano()))
	fmt.Printf("%-40s prealloc=%v: %v per sync, cpu %v per sync\n", name, prealloc, el/time.Duration(n), cpu/time.Duration(n))
	f.Close()
}

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the file system to measure")
	flag.Parse()
	for i := 0; i < 2; i++ {
		run(filepath.Join(*dir, "fsyncprobe-append.log"), false)
		run(filepath.Join(*dir, "fsyncprobe-prealloc.log"), true)
	}
}
