// Package sysmem tells how much memory the machine, or the cgroup the
// process runs in, gives the process.
package sysmem

// Total returns the memory available to the process in bytes: the smaller
// of the machine's physical memory and the process's cgroup memory limit,
// where the system reports them (Linux); 0 when it cannot tell.
func Total() uint64 { return total() }
