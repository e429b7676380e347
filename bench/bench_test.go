package bench

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// The benchmark data set: benchKeys keys named like kvbench's
// ("key:0000000042"), each holding a 64-byte value. Every store is loaded
// once per test binary and shared by all benchmarks.
const (
	benchKeys  = 100_000
	valueBytes = 64
	txnReads   = 10
	txnWrites  = 10
)

var (
	keys = makeKeys(benchKeys)
	// probes are the same keys in memory of their own, as a program's keys
	// would be when they come from a request. Looking a stored key up with
	// the very string it was stored with lets a Go map skip comparing the
	// key's bytes (equal pointers), which no server ever gets to do.
	probes = makeKeys(benchKeys)
	// values holds a distinct 64-byte value for every key, as real data
	// would: with one shared value string, a store that keeps references
	// to the caller's strings would hold no value bytes at all, and one
	// that owns its data would be charged for a working set the others do
	// not have. Writes pick a value with the key.
	values = makeValues(benchKeys)

	loadedMu sync.Mutex
	loaded   = map[string]KV{}
)

func makeValues(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%0*d", valueBytes, i)
	}
	return out
}

// valueFor returns the value written to keys[i] or probes[i].
func valueFor(i uint64) string { return values[i%benchKeys] }

func makeKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("key:%010d", i)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range loaded {
		s.Close()
	}
	os.Exit(code)
}

// loadedStore returns the shared, fully loaded store made by f. Only one
// store is loaded at a time: the others are closed and collected first, so
// that no store's benchmark pays for marking another store's heap in the
// garbage collector (a store that allocates per operation would otherwise
// be charged for every other store's pointers).
func loadedStore(b *testing.B, f Factory) KV {
	b.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if s, ok := loaded[f.Name]; ok {
		return s
	}
	for name, other := range loaded {
		other.Close()
		delete(loaded, name)
	}
	runtime.GC()
	s, err := f.New()
	if err != nil {
		b.Fatalf("%s: %v", f.Name, err)
	}
	if tx, ok := s.(Transactional); ok {
		// Load in batches: one transaction per 1000 keys.
		for lo := 0; lo < len(keys); lo += 1000 {
			batch := keys[lo:min(lo+1000, len(keys))]
			err := tx.Update(func(t Tx) error {
				for i, k := range batch {
					if err := t.Put(k, values[lo+i]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatalf("%s: load: %v", f.Name, err)
			}
		}
	} else {
		for i, k := range keys {
			s.Put(k, values[i])
		}
	}
	loaded[f.Name] = s
	return s
}

// rng is a per-goroutine xorshift64* generator for key choice.
type rng uint64

var seeds atomic.Uint64

func newRNG() *rng {
	r := rng(seeds.Add(1)*0x9e3779b97f4a7c15 | 1)
	return &r
}

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 0x2545f4914f6cdd1d
}

func (r *rng) key() string { return probes[r.next()%benchKeys] }

// forEachStore runs fn as a sub-benchmark for every store.
func forEachStore(b *testing.B, fn func(b *testing.B, s KV)) {
	for _, f := range Factories() {
		b.Run(f.Name, func(b *testing.B) { fn(b, loadedStore(b, f)) })
	}
}

// forEachTransactional runs fn for every store with transactions
// (sync.Map has none and gets no sub-benchmark).
func forEachTransactional(b *testing.B, fn func(b *testing.B, s Transactional)) {
	for _, f := range Factories() {
		if f.Transactional {
			b.Run(f.Name, func(b *testing.B) { fn(b, loadedStore(b, f).(Transactional)) })
		}
	}
}

// BenchmarkGet reads one existing key per operation.
func BenchmarkGet(b *testing.B) {
	forEachStore(b, func(b *testing.B, s KV) {
		r := newRNG()
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := s.Get(r.key()); !ok {
				b.Fatal("loaded key missing")
			}
		}
	})
}

// BenchmarkPut overwrites one existing key with a 64-byte value per
// operation.
func BenchmarkPut(b *testing.B) {
	forEachStore(b, func(b *testing.B, s KV) {
		r := newRNG()
		b.ReportAllocs()
		for b.Loop() {
			x := r.next()
			s.Put(probes[x%benchKeys], valueFor(x>>20))
		}
	})
}

// BenchmarkMix9010 runs 90% Gets and 10% Puts on random keys from
// GOMAXPROCS goroutines.
func BenchmarkMix9010(b *testing.B) {
	forEachStore(b, func(b *testing.B, s KV) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := newRNG()
			for pb.Next() {
				x := r.next()
				k := probes[(x>>8)%benchKeys]
				if x&0xff < 26 { // 26/256 ~ 10%
					s.Put(k, valueFor(x>>32))
				} else if _, ok := s.Get(k); !ok {
					b.Error("loaded key missing")
					return
				}
			}
		})
	})
}

// txnWork is one transaction of txnReads reads and txnWrites writes of
// random keys; the closure is built once so the harness allocates nothing
// per operation.
type txnWork struct {
	r  *rng
	ks [txnReads + txnWrites]string
	fn func(Tx) error
}

func newTxnWork() *txnWork {
	w := &txnWork{r: newRNG()}
	w.fn = func(t Tx) error {
		for _, k := range w.ks[:txnReads] {
			if _, ok, err := t.Get(k); err != nil || !ok {
				return fmt.Errorf("txn read %s: %v %v", k, ok, err)
			}
		}
		for _, k := range w.ks[txnReads:] {
			if err := t.Put(k, valueFor(w.r.next())); err != nil {
				return err
			}
		}
		return nil
	}
	return w
}

func (w *txnWork) run(s Transactional) error {
	for i := range w.ks {
		w.ks[i] = w.r.key()
	}
	return s.Update(w.fn)
}

// BenchmarkTxn runs one read-write transaction of 10 reads and 10 writes
// of random keys per operation, from one goroutine.
func BenchmarkTxn(b *testing.B) {
	forEachTransactional(b, func(b *testing.B, s Transactional) {
		w := newTxnWork()
		b.ReportAllocs()
		for b.Loop() {
			if err := w.run(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTxnParallel runs the same transactions from GOMAXPROCS
// goroutines; optimistic stores retry the (rare) conflicts inside Update.
func BenchmarkTxnParallel(b *testing.B) {
	forEachTransactional(b, func(b *testing.B, s Transactional) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := newTxnWork()
			for pb.Next() {
				if err := w.run(s); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
