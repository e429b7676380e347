package kvstore

import (
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

const benchKeys = 100_000

// goroutineStart gives each goroutine of a parallel benchmark its own
// starting key, so that they do not walk the same shards in lockstep.
var goroutineStart atomic.Int64

func nextStart() int { return int(goroutineStart.Add(1)*7919) % benchKeys }

// benchStore returns a store with benchKeys keys of 64-byte values and the
// keys themselves.
func benchStore(b *testing.B) (*Store, []string) {
	b.Helper()
	s := New()
	keys := make([]string, benchKeys)
	val := string(make([]byte, 64))
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
		s.Put(keys[i], val)
	}
	return s, keys
}

func BenchmarkStoreGet(b *testing.B) {
	s, keys := benchStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Get(keys[i%benchKeys])
		i++
	}
}

func BenchmarkStoreGetParallel(b *testing.B) {
	s, keys := benchStore(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := nextStart()
		for pb.Next() {
			s.Get(keys[i%benchKeys])
			i += 7
		}
	})
}

func BenchmarkStorePut(b *testing.B) {
	s, keys := benchStore(b)
	val := string(make([]byte, 64))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Put(keys[i%benchKeys], val)
		i++
	}
}

func BenchmarkStorePutParallel(b *testing.B) {
	s, keys := benchStore(b)
	val := string(make([]byte, 64))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := nextStart()
		for pb.Next() {
			s.Put(keys[i%benchKeys], val)
			i += 7
		}
	})
}

// BenchmarkStoreMixParallel is 90% Get, 10% Put from every core.
func BenchmarkStoreMixParallel(b *testing.B) {
	s, keys := benchStore(b)
	val := string(make([]byte, 64))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := nextStart()
		for pb.Next() {
			if i%10 == 0 {
				s.Put(keys[i%benchKeys], val)
			} else {
				s.Get(keys[i%benchKeys])
			}
			i += 7
		}
	})
}

// BenchmarkTxnCommit commits a transaction that reads and writes n keys.
func BenchmarkTxnCommit(b *testing.B) { benchCommits(b, true) }

// BenchmarkTxnBlindCommit commits n writes without reads: no validation.
func BenchmarkTxnBlindCommit(b *testing.B) { benchCommits(b, false) }

func benchCommits(b *testing.B, read bool) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprint("writes=", n), func(b *testing.B) {
			s, keys := benchStore(b)
			val := string(make([]byte, 64))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tx := s.Begin()
				for j := range n {
					k := keys[(i+j*997)%benchKeys]
					if read {
						tx.Get(k)
					}
					tx.Put(k, val)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkView reads 10 keys in a read-only transaction.
func BenchmarkView(b *testing.B) {
	s, keys := benchStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		view10(s, keys, i)
		i++
	}
}

// BenchmarkViewParallel is BenchmarkView from every core.
func BenchmarkViewParallel(b *testing.B) {
	s, keys := benchStore(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := nextStart()
		for pb.Next() {
			view10(s, keys, i)
			i++
		}
	})
}

// view10 reads 10 keys, spread from the i-th, in one View.
func view10(s *Store, keys []string, i int) {
	s.View(func(tx *Txn) error {
		for j := range 10 {
			tx.Get(keys[(i+j*997)%benchKeys])
		}
		return nil
	})
}

// BenchmarkStoreGetHotShard reads keys of one shard while another goroutine
// keeps putting to that shard, and reports the readers' latency: p50, p99
// and the worst (ns). Lock-free reads retry when a writer changed the shard
// meanwhile; they fall back to the read lock after a few attempts.
func BenchmarkStoreGetHotShard(b *testing.B) {
	s := New()
	var keys []string
	for i := 0; len(keys) < 64; i++ {
		k := "hot:" + strconv.Itoa(i)
		if shardIndex(s.hash(k)) == 0 {
			keys = append(keys, k)
			s.Put(k, "v")
		}
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); i++ {
			s.Put(keys[i%len(keys)], "w")
		}
	}()
	lat := make([]time.Duration, 0, 1<<20)
	i := 0
	for b.Loop() {
		start := time.Now()
		s.Get(keys[i%len(keys)])
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(start))
		}
		i++
	}
	b.StopTimer()
	stop.Store(true)
	<-done
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)-1]), "worst-ns")
	}
}
