package kvstore

import (
	"testing"
	"time"
)

func TestLatencyBucket(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {time.Microsecond, 0},
		{time.Microsecond + 1, 1}, {2 * time.Microsecond, 1},
		{2*time.Microsecond + 1, 2}, {4 * time.Microsecond, 2},
		{5 * time.Microsecond, 3}, {time.Millisecond, 10}, // 1024 µs
		{LatencyBound(LatencyBuckets - 1), LatencyBuckets - 1},
		{LatencyBound(LatencyBuckets-1) + 1, LatencyBuckets},
		{time.Hour, LatencyBuckets},
	} {
		if got := latencyBucket(c.d); got != c.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
		// The bucket's bounds hold d.
		i := latencyBucket(c.d)
		if i < LatencyBuckets && c.d > LatencyBound(i) || i > 0 && c.d <= LatencyBound(i-1) {
			t.Errorf("%v is not in bucket %d", c.d, i)
		}
	}
}

// BenchmarkLatencyObserve is what the latency histogram adds to each
// batch of responses an event loop writes: one clock read and one
// observation (two uncontended atomic adds).
func BenchmarkLatencyObserve(b *testing.B) {
	var l latencyCounts
	start := time.Now()
	readAt := time.Since(start)
	for b.Loop() {
		l.observe(time.Since(start)-readAt, 1)
	}
}
