package kvstore

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkOpen measures recovery: Open on a directory holding 1M keys of
// 64-byte values, as a log of single-key commits only and as a snapshot
// (plus an empty log segment). The files are made once per
// sub-benchmark and are in the page cache, so this is the CPU cost of
// recovery, not the disk's. bench/durability.sh measures whole restarts
// of kvd next to Redis.
func BenchmarkOpen(b *testing.B) {
	for _, snap := range []bool{false, true} {
		name := "log"
		if snap {
			name = "snapshot"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(dir, WithSync(SyncNever), WithAutoCompact(-1))
			if err != nil {
				b.Fatal(err)
			}
			val := strings.Repeat("v", 64)
			const n = 1_000_000
			for i := range n {
				if err := s.Put(fmt.Sprintf("key:%010d", i), val); err != nil {
					b.Fatal(err)
				}
			}
			if snap {
				if err := s.Compact(); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				s, err := Open(dir, WithAutoCompact(-1))
				if err != nil {
					b.Fatal(err)
				}
				if s.Len() != n {
					b.Fatalf("recovered %d keys, want %d", s.Len(), n)
				}
				b.StopTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
