package sysmem

import (
	"runtime"
	"testing"
)

func TestTotal(t *testing.T) {
	n := Total()
	t.Logf("Total() = %d MiB", n>>20)
	if runtime.GOOS != "linux" {
		return
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	// The process runs, so it has at least what it holds; and no machine
	// this runs on has an exabyte.
	if n < m.Sys || n > 1<<60 {
		t.Errorf("Total() = %d, with %d bytes obtained from the OS", n, m.Sys)
	}
}
