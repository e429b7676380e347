package kvstore

import (
	"container/heap"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Keyspace benchmarks: the cost of the ordered sets and of expiry times,
// listing 1M keys by pages, and reclaiming 1M expired keys. Figures and
// commands are in BENCHMARKS.md ("Keyspace"). The 1M-key ones are meant to
// run once: -benchtime=1x.

const keyspaceKeys = 1_000_000

func keyspaceKey(i int) string { return fmt.Sprintf("user:%08d", i) }

// BenchmarkStorePutNewKey inserts a new key per operation: the ordered set
// is only touched when a key enters the table.
func BenchmarkStorePutNewKey(b *testing.B) {
	s := New()
	val := string(make([]byte, 64))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Put(keyspaceKey(i), val)
		i++
	}
}

// heapPerKey loads n keys with fill and reports the live heap per key.
func heapPerKey(b *testing.B, fill func(s *Store, i int)) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New()
		for i := range keyspaceKeys {
			fill(s, i)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keyspaceKeys, "heap-B/key")
		b.ReportMetric(float64(s.MemoryUsage())/keyspaceKeys, "accounted-B/key")
		s.Close()
		runtime.KeepAlive(s)
	}
}

// BenchmarkMemory1MKeys: 1M keys of 13 bytes with 64-byte values.
func BenchmarkMemory1MKeys(b *testing.B) {
	val := string(make([]byte, 64))
	heapPerKey(b, func(s *Store, i int) { s.Put(keyspaceKey(i), val) })
}

// BenchmarkMemory1MKeysListed: the same keys, then one listing, which
// builds the ordered sets.
func BenchmarkMemory1MKeysListed(b *testing.B) {
	val := string(make([]byte, 64))
	heapPerKey(b, func(s *Store, i int) {
		s.Put(keyspaceKey(i), val)
		if i == keyspaceKeys-1 {
			for range s.Ascend("") {
				break
			}
		}
	})
}

// BenchmarkMemory1MKeysWithTTL: the same keys, each with a time to live.
func BenchmarkMemory1MKeysWithTTL(b *testing.B) {
	val := string(make([]byte, 64))
	heapPerKey(b, func(s *Store, i int) { s.PutWithTTL(keyspaceKey(i), val, time.Hour) })
}

func loaded1M(b *testing.B) *Store {
	s := New()
	for i := range keyspaceKeys {
		s.Put(keyspaceKey(i), "v")
	}
	return s
}

// BenchmarkList1MPaged lists 1M keys by pages of 1000 with AscendAfter, as
// KEYS user:* LIMIT 1000 AFTER <last> does; ns/op is per whole listing.
func BenchmarkList1MPaged(b *testing.B) {
	s := loaded1M(b)
	b.ReportAllocs()
	for b.Loop() {
		n, after := 0, ""
		for {
			got := 0
			for k := range s.AscendAfter("user:", after) {
				after = k
				if got++; got == 1000 {
					break
				}
			}
			n += got
			if got < 1000 {
				break
			}
		}
		if n != keyspaceKeys {
			b.Fatalf("listed %d keys", n)
		}
	}
}

// BenchmarkList1MFirstPage lists one page of 1000 keys from the middle.
func BenchmarkList1MFirstPage(b *testing.B) {
	s := loaded1M(b)
	b.ReportAllocs()
	for range s.Ascend("") { // build the ordered sets
		break
	}
	for b.Loop() {
		got := 0
		for range s.AscendAfter("user:", keyspaceKey(500_000)) {
			if got++; got == 1000 {
				break
			}
		}
	}
}

// maxHeap keeps the n smallest keys seen.
type maxHeap []string

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// scanPage is the alternative without ordered sets: scan every slot of
// every table and keep the n smallest keys after `after` (a bounded heap),
// then sort them. It ignores snapshots: it only measures the scan.
func (s *Store) scanPage(prefix, after string, n int) []string {
	h := make(maxHeap, 0, n+1)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, sl := range sh.t.slots {
			if sl.rec == nil || sl.meta&slotTombBit != 0 {
				continue
			}
			k := recKey(sl.rec)
			if k <= after || !strings.HasPrefix(k, prefix) || (len(h) == n && k >= h[0]) {
				continue
			}
			heap.Push(&h, k)
			if len(h) > n {
				heap.Pop(&h)
			}
		}
		sh.mu.RUnlock()
	}
	out := make([]string, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(string)
	}
	return out
}

// BenchmarkList1MScanPerPage is the cost of one page of 1000 keys from the
// middle without an ordered structure: a full scan of the tables.
func BenchmarkList1MScanPerPage(b *testing.B) {
	s := loaded1M(b)
	b.ReportAllocs()
	for b.Loop() {
		if p := s.scanPage("user:", keyspaceKey(500_000), 1000); len(p) != 1000 || p[0] != keyspaceKey(500_001) {
			b.Fatalf("page of %d keys from %v", len(p), p[:1])
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExpire1M gives 1M keys a time to live, moves the clock past it,
// and measures how long active expiry takes to reclaim them all (nobody
// reads them), the process CPU time it used, and the heap before and after.
func BenchmarkExpire1M(b *testing.B) {
	for b.Loop() {
		var now atomic.Int64
		now.Store(time.Unix(1_700_000_000, 0).UnixNano())
		s := New(WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
		val := string(make([]byte, 64))
		for i := range keyspaceKeys {
			s.PutWithTTL(keyspaceKey(i), val, time.Minute)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		full := ms.HeapAlloc
		start, cpu0 := time.Now(), cpuTime()
		now.Add(int64(time.Minute))
		for s.Len() > 0 {
			time.Sleep(time.Millisecond)
		}
		elapsed, cpu := time.Since(start), cpuTime()-cpu0
		runtime.GC()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(elapsed.Seconds(), "s-to-reclaim")
		b.ReportMetric(cpu.Seconds(), "cpu-s")
		b.ReportMetric(float64(full)/(1<<20), "heap-MiB-before")
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB-after")
		b.ReportMetric(float64(s.MemoryUsage())/(1<<20), "accounted-MiB-after")
		s.Close()
	}
}
