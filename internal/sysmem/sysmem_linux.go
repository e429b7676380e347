//go:build linux

package sysmem

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

func total() uint64 {
	t := memTotal()
	for _, f := range []string{
		"/sys/fs/cgroup/memory.max",                   // cgroup v2
		"/sys/fs/cgroup/memory/memory.limit_in_bytes", // cgroup v1
	} {
		if l := readLimit(f); l > 0 && (t == 0 || l < t) {
			t = l
		}
	}
	return t
}

// memTotal is MemTotal from /proc/meminfo, in bytes.
func memTotal() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// readLimit reads a cgroup memory limit; 0 for none ("max", or the
// huge value cgroup v1 uses for no limit) or an unreadable file.
func readLimit(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || v >= 1<<62 {
		return 0
	}
	return v
}
