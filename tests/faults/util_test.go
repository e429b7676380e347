package faults

import (
	"runtime"
	"time"

	"github.com/kvd-dev/kvstore"
)

func kvstoreWriteTimeout(d time.Duration) kvstore.Option { return kvstore.WithWriteTimeout(d) }

// heapInUse returns the live heap after a garbage collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
