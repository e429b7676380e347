package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketBoundsContainValue(t *testing.T) {
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096, 1e6, 123456789, 1 << 40, 1<<45 + 12345}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		values = append(values, r.Uint64N(1<<44))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d with bounds [%d, %d]", v, i, lo, hi)
		}
		// Relative width of the bucket is below 1/subBuckets.
		if float64(hi-lo) > float64(lo)/subBuckets {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d of its lower bound", i, lo, hi, subBuckets)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	_, prevHi := bucketBounds(0)
	for i := 1; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d bounds [%d, %d] map to %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
}

func TestHugeValueClampsToLastBucket(t *testing.T) {
	if got := bucketOf(^uint64(0)); got != numBuckets-1 {
		t.Fatalf("bucketOf(max) = %d, want %d", got, numBuckets-1)
	}
	var h histogram
	h.record(-5) // negative durations count as zero
	if h.min != 0 || h.counts[0] != 1 {
		t.Fatalf("negative duration: min %d counts[0] %d", h.min, h.counts[0])
	}
}

// within reports whether got is within the histogram's relative precision
// of want.
func within(got, want time.Duration) bool {
	diff := got - want
	if diff < 0 {
		diff = -diff
	}
	return float64(diff) <= float64(want)/subBuckets+1
}

func TestQuantilesOfUniform(t *testing.T) {
	var h histogram
	// 1us, 2us, ..., 10000us, shuffled.
	r := rand.New(rand.NewPCG(3, 4))
	for _, i := range r.Perm(10000) {
		h.record(time.Duration(i+1) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.9, 9000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.999, 9990 * time.Microsecond},
		{1, 10000 * time.Microsecond},
	} {
		if got := h.quantile(c.q); !within(got, c.want) {
			t.Errorf("quantile(%v) = %v, want %v within 1/%d", c.q, got, c.want, subBuckets)
		}
	}
	if h.max != uint64(10000*time.Microsecond) || h.min != uint64(time.Microsecond) {
		t.Errorf("min/max = %d/%d", h.min, h.max)
	}
	if got, want := h.mean(), 5000500*time.Nanosecond; got != want {
		t.Errorf("mean = %v, want %v", got, want)
	}
}

func TestQuantileClampedToObservedRange(t *testing.T) {
	var h histogram
	for i := 0; i < 100; i++ {
		h.record(1000003) // one value: every quantile is exactly it
	}
	for _, q := range []float64{0.001, 0.5, 0.99, 1} {
		if got := h.quantile(q); got != 1000003 {
			t.Errorf("quantile(%v) = %d, want 1000003", q, got)
		}
	}
	var empty histogram
	if empty.quantile(0.99) != 0 || empty.mean() != 0 {
		t.Error("empty histogram should report zeros")
	}
}

func TestQuantileTail(t *testing.T) {
	var h histogram
	for i := 0; i < 999; i++ {
		h.record(100 * time.Microsecond)
	}
	h.record(50 * time.Millisecond)
	if got := h.quantile(0.999); !within(got, 100*time.Microsecond) {
		t.Errorf("p99.9 of 999 fast + 1 slow = %v, want ~100us", got)
	}
	if got := h.quantile(1); got != 50*time.Millisecond {
		t.Errorf("max quantile = %v, want 50ms", got)
	}
}

func TestMergeEqualsSingleHistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var all histogram
	parts := make([]histogram, 7)
	for i := 0; i < 50000; i++ {
		// Log-normal-ish latencies from 1us to ~100ms.
		d := time.Duration(r.ExpFloat64() * r.ExpFloat64() * float64(200*time.Microsecond))
		all.record(d)
		parts[r.IntN(len(parts))].record(d)
	}
	var merged histogram
	merged.merge(&histogram{}) // merging an empty histogram changes nothing
	for i := range parts {
		merged.merge(&parts[i])
	}
	if merged != all {
		t.Fatalf("merged histogram differs: total %d/%d min %d/%d max %d/%d sum %d/%d",
			merged.total, all.total, merged.min, all.min, merged.max, all.max, merged.sum, all.sum)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if merged.quantile(q) != all.quantile(q) {
			t.Errorf("quantile(%v): merged %v, single %v", q, merged.quantile(q), all.quantile(q))
		}
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h histogram
	allocs := testing.AllocsPerRun(1000, func() { h.record(12345) })
	if allocs != 0 {
		t.Fatalf("record allocates %v times", allocs)
	}
}

func TestSummarizeInMicroseconds(t *testing.T) {
	var h histogram
	h.record(2 * time.Millisecond)
	s := summarize(&h)
	if s.P50 != 2000 || s.Max != 2000 || s.Mean != 2000 {
		t.Fatalf("summary %+v, want 2000us everywhere", s)
	}
}
