package main

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// keyspace holds every key of the benchmark as fixed-width byte strings in
// one slab ("key:0000000042"), so that picking a key is an index and a
// slice expression, never an allocation.
type keyspace struct {
	slab  []byte
	width int // bytes per key
	n     int
}

const keyPrefix = "key:"

func newKeyspace(n int) *keyspace {
	if n < 1 {
		n = 1
	}
	ks := &keyspace{width: keyWidth(n), n: n}
	digits := ks.width - len(keyPrefix)
	ks.slab = make([]byte, 0, n*ks.width)
	for i := 0; i < n; i++ {
		ks.slab = append(ks.slab, keyPrefix...)
		s := strconv.Itoa(i)
		for j := len(s); j < digits; j++ {
			ks.slab = append(ks.slab, '0')
		}
		ks.slab = append(ks.slab, s...)
	}
	return ks
}

// keyWidth returns the length of every key of an n-key space: the prefix
// and at least 10 digits.
func keyWidth(n int) int {
	return len(keyPrefix) + max(10, len(strconv.Itoa(n-1)))
}

// key returns key i; the slice aliases the slab and must not be modified.
func (ks *keyspace) key(i int) []byte {
	return ks.slab[i*ks.width : (i+1)*ks.width : (i+1)*ks.width]
}

// makeValue returns a value of n printable bytes (no spaces, so it is
// also easy to read in a packet capture).
func makeValue(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	v := make([]byte, n)
	for i := range v {
		v[i] = alphabet[i%len(alphabet)]
	}
	return v
}

// parseRatio parses a GET:PUT ratio such as "9:1" or "1:0".
func parseRatio(s string) (get, put int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("ratio %q: want GET:PUT, e.g. 9:1", s)
	}
	get, err1 := strconv.Atoi(strings.TrimSpace(a))
	put, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || get < 0 || put < 0 || get+put == 0 {
		return 0, 0, fmt.Errorf("ratio %q: want two non-negative integers, not both 0", s)
	}
	return get, put, nil
}

// rng is a small xorshift64* generator: one per connection, no locking, no
// allocation.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng {
	// splitmix64 scrambles nearby seeds into unrelated states.
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	if z == 0 {
		z = 1
	}
	return &rng{s: z}
}

func (r *rng) next() uint64 {
	x := r.s
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	r.s = x
	return x * 0x2545f4914f6cdd1d
}

// intn returns a number in [0, n) (n > 0), by Lemire's multiply-shift; the
// bias is negligible for benchmark key choice.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}
