package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag value holding a number of bytes, written as a plain
// number or with a KiB, MiB or GiB suffix: 1048576, 512KiB, 256MiB, 2GiB.
type byteSize int64

var byteSuffixes = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}}

// parseByteSize parses a byteSize.
func parseByteSize(s string) (byteSize, error) {
	num, mult := s, int64(1)
	for _, b := range byteSuffixes {
		if n, ok := strings.CutSuffix(s, b.suffix); ok {
			num, mult = n, b.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size in bytes (a number, optionally followed by KiB, MiB or GiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return byteSize(n * mult), nil
}

// Set implements flag.Value.
func (b *byteSize) Set(s string) error {
	v, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String implements flag.Value.
func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
