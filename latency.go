package kvstore

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyBuckets is the number of finite buckets of a LatencyHistogram:
// bucket i holds the requests that took more than LatencyBound(i-1) and at
// most LatencyBound(i) = 2^i µs, so the buckets go from 1 µs to 2^24 µs
// (about 16.8 s), doubling. One more bucket holds the slower ones.
const LatencyBuckets = 25

// LatencyBound returns the upper bound of finite bucket i of a
// LatencyHistogram: 2^i microseconds.
func LatencyBound(i int) time.Duration { return time.Microsecond << i }

// LatencyHistogram counts requests by how long the server took to answer
// them: from the event loop round (or, on the goroutine backend, the read)
// that brought the request in, to the write of its response. Requests
// answered in one batch (pipelined, or read together) share one
// measurement, taken once per batch, so the histogram costs two clock
// reads per batch and one atomic add per bucket touched, not per request.
type LatencyHistogram struct {
	// Counts[i], for i < LatencyBuckets, is the number of requests that
	// took more than LatencyBound(i-1) and at most LatencyBound(i) (at
	// most 1 µs for i = 0); Counts[LatencyBuckets] is the number of
	// slower ones. Counts are per bucket, not cumulative.
	Counts [LatencyBuckets + 1]uint64
	// Sum is the total time of all the requests counted.
	Sum time.Duration
}

// Count returns the number of requests in h.
func (h *LatencyHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// latencyBucket returns the bucket of a request that took d.
func latencyBucket(d time.Duration) int {
	if d <= time.Microsecond {
		return 0
	}
	// The smallest i with d <= 2^i µs: for d in (2^(i-1), 2^i] µs,
	// (d-1)/1µs is in [2^(i-1), 2^i - 1], whose bit length is i.
	return min(bits.Len64(uint64(d-1)/uint64(time.Microsecond)), LatencyBuckets)
}

// latencyCounts is the live form of a LatencyHistogram: atomic counters,
// each written by one goroutine (an event loop, or a connection's) and
// read by Server.Stats.
type latencyCounts struct {
	counts [LatencyBuckets + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// observe counts n requests that each took d.
func (l *latencyCounts) observe(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	d = max(d, 0)
	l.counts[latencyBucket(d)].Add(n)
	l.sum.Add(int64(d) * int64(n))
}

// addTo adds the counts of l to h.
func (l *latencyCounts) addTo(h *LatencyHistogram) {
	for i := range l.counts {
		h.Counts[i] += l.counts[i].Load()
	}
	h.Sum += time.Duration(l.sum.Load())
}

// merge adds the counts of src to l.
func (l *latencyCounts) merge(src *latencyCounts) {
	for i := range src.counts {
		if n := src.counts[i].Load(); n != 0 {
			l.counts[i].Add(n)
		}
	}
	l.sum.Add(src.sum.Load())
}
