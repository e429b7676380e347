package main

import (
	"math"
	"math/bits"
	"time"
)

// The latency histogram is log-bucketed in the HDR style: values below
// subBuckets nanoseconds get one bucket each, and every power-of-two range
// above that is split into subBuckets equal buckets, so any recorded value
// is reported with a relative error below 1/subBuckets (about 1.6%).
// Recording is a few integer instructions and never allocates; each
// connection owns one histogram and they are merged once at the end.
const (
	subBits    = 6
	subBuckets = 1 << subBits // 64
	// maxExp bounds the recordable range to 2^(maxExp+subBits) ns (about
	// 19.5 hours); larger values are clamped into the last bucket.
	maxExp     = 40
	numBuckets = (maxExp + 1) * subBuckets
)

// histogram counts latencies in nanoseconds.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    uint64 // nanoseconds, for the mean
	min    uint64
	max    uint64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - (subBits + 1) // v>>e is in [subBuckets, 2*subBuckets)
	if e >= maxExp {
		return numBuckets - 1
	}
	return (e+1)*subBuckets + int(v>>uint(e)) - subBuckets
}

// bucketBounds returns the smallest and largest value that fall in bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	e := uint(i/subBuckets - 1)
	m := uint64(i%subBuckets + subBuckets)
	return m << e, (m+1)<<e - 1
}

// record adds one observation.
func (h *histogram) record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += v
}

// merge adds every observation of o to h.
func (h *histogram) merge(o *histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// quantile returns the value at quantile q (0 < q <= 1): the upper bound of
// the bucket holding the ceil(q*total)-th smallest observation, clamped to
// the exact minimum and maximum seen. It returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.total {
		rank = h.total
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			hi = min(max(hi, h.min), h.max)
			return time.Duration(hi)
		}
	}
	return time.Duration(h.max)
}

// mean returns the arithmetic mean of the observations.
func (h *histogram) mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / h.total)
}
