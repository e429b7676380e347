// Command kvbench is a load generator for kvd in the spirit of
// redis-benchmark. It opens -c connections, each driven by one goroutine
// that pipelines -P operations per round trip, and reports throughput,
// errors and latency percentiles from per-connection log-bucketed
// histograms merged at the end.
//
// The same settings drive redis-server with -proto resp (SET/GET, and
// WATCH/GET/MULTI/SET/EXEC for -txn), for side-by-side comparisons.
//
// Examples:
//
//	kvbench -addr 127.0.0.1:4000 -c 50 -P 16 -d 5s -ratio 9:1 -keys 100000 -vsize 64 -prefill
//	kvbench -proto resp -addr 127.0.0.1:6379 -c 50 -d 5s -json
//	kvbench -addr 127.0.0.1:4000 -c 8 -txn 0.2 -txn-keys 2 -keys 1000 -d 5s
//	kvbench -addr 127.0.0.1:4000 -prefill -load-only -keys 1000000 -vsize 64
//	kvbench -addr 127.0.0.1:4000 -idle 10000 -d 10s
//
// Throughput counts operations: a single GET or PUT is one, a transaction
// (START, a GET of each key, a PUT of each key, COMMIT) is one; the
// summary also reports protocol requests per second. Latency is measured
// per operation, from the write of its pipelined batch to the reply that
// completes it; transactions have their own latency line.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line flags.
type options struct {
	addr      string
	proto     string
	conns     int
	pipeline  int
	duration  time.Duration
	requests  int64
	rate      float64
	ratio     string
	keys      int
	vsize     int
	prefill   bool
	loadOnly  bool
	txn       float64
	txnKeys   int
	jsonOut   bool
	quiet     bool
	idle      int
	seed      uint64
	dialTO    time.Duration
	graceTime time.Duration
	cpuProf   string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("kvbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:4000", "server address (host:port)")
	fs.StringVar(&o.proto, "proto", "kvd", "wire protocol: kvd (line protocol) or resp (RESP2, for redis-server)")
	fs.IntVar(&o.conns, "c", 50, "number of connections, one goroutine each")
	fs.IntVar(&o.pipeline, "P", 1, "pipeline depth: operations sent per round trip")
	fs.DurationVar(&o.duration, "d", 5*time.Second, "run duration (ignored when -n is set); hold time with -idle")
	fs.Int64Var(&o.requests, "n", 0, "total operations over all connections (0: run for -d)")
	fs.Float64Var(&o.rate, "rate", 0, "offered load in operations per second over all connections, each connection sending its batches on a fixed schedule; latency then counts from each batch's scheduled time, not from when it could be sent (0: as fast as replies come)")
	fs.StringVar(&o.ratio, "ratio", "9:1", "GET:PUT ratio of single-key operations")
	fs.IntVar(&o.keys, "keys", 100000, "key space size (keys key:0000000000 ...)")
	fs.IntVar(&o.vsize, "vsize", 64, "value size in bytes")
	fs.BoolVar(&o.prefill, "prefill", false, "write every key once before the run")
	fs.BoolVar(&o.loadOnly, "load-only", false, "with -prefill: load the keys and exit without a timed run")
	fs.Float64Var(&o.txn, "txn", 0, "share of operations (0..1) sent as transactions: START, GET and PUT of each of -txn-keys keys, COMMIT (resp: WATCH, GETs, MULTI, SETs, EXEC)")
	fs.IntVar(&o.txnKeys, "txn-keys", 2, "keys read and written by each transaction")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON summary line on stdout instead of the text summary")
	fs.BoolVar(&o.quiet, "q", false, "no progress line on stderr")
	fs.IntVar(&o.idle, "idle", 0, "open this many idle connections, hold them for -d, close them, and exit (for RSS measurements)")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed for key choice")
	fs.DurationVar(&o.dialTO, "dial-timeout", 5*time.Second, "timeout for each connect")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of kvbench itself to this file")
	fs.DurationVar(&o.graceTime, "grace", 10*time.Second, "how long to wait for replies after the run ends before closing connections")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: kvbench [flags]\n\nA redis-benchmark style load generator for kvd (and redis-server with -proto resp).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case o.conns < 1:
		return nil, errors.New("-c must be at least 1")
	case o.pipeline < 1:
		return nil, errors.New("-P must be at least 1")
	case o.keys < 1:
		return nil, errors.New("-keys must be at least 1")
	case o.vsize < 0:
		return nil, errors.New("-vsize must not be negative")
	case o.txn < 0 || o.txn > 1:
		return nil, errors.New("-txn must be between 0 and 1")
	case o.txnKeys < 1:
		return nil, errors.New("-txn-keys must be at least 1")
	case o.requests < 0:
		return nil, errors.New("-n must not be negative")
	case o.rate < 0:
		return nil, errors.New("-rate must not be negative")
	case o.requests == 0 && o.duration <= 0 && !o.loadOnly && o.idle == 0:
		return nil, errors.New("set -d or -n")
	case o.loadOnly && !o.prefill:
		return nil, errors.New("-load-only needs -prefill")
	case o.idle < 0:
		return nil, errors.New("-idle must not be negative")
	}
	return o, nil
}

// latencySummary is a latency distribution in microseconds.
type latencySummary struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func summarize(h *histogram) latencySummary {
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return latencySummary{
		P50:  us(h.quantile(0.50)),
		P90:  us(h.quantile(0.90)),
		P99:  us(h.quantile(0.99)),
		P999: us(h.quantile(0.999)),
		Max:  us(time.Duration(h.max)),
		Mean: us(h.mean()),
	}
}

// summary is the result of a run; -json prints it as one line.
type summary struct {
	Proto       string          `json:"proto"`
	Addr        string          `json:"addr"`
	Conns       int             `json:"conns"`
	Pipeline    int             `json:"pipeline"`
	Ratio       string          `json:"ratio"`
	Keys        int             `json:"keys"`
	ValueSize   int             `json:"vsize"`
	TxnShare    float64         `json:"txn"`
	TxnKeys     int             `json:"txn_keys,omitempty"`
	PrefillSec  float64         `json:"prefill_seconds,omitempty"`
	Seconds     float64         `json:"seconds"`
	Ops         uint64          `json:"ops"`
	OpsPerSec   float64         `json:"ops_per_sec"`
	Requests    uint64          `json:"requests"`
	ReqPerSec   float64         `json:"requests_per_sec"`
	Errors      uint64          `json:"errors"`
	Misses      uint64          `json:"misses"`
	ConnErrors  int             `json:"conn_errors"`
	FirstError  string          `json:"first_error,omitempty"`
	Latency     latencySummary  `json:"latency_us"`
	Txns        uint64          `json:"txns,omitempty"`
	Conflicts   uint64          `json:"conflicts,omitempty"`
	TxnLatency  *latencySummary `json:"txn_latency_us,omitempty"`
	IdleOpen    int             `json:"idle_open,omitempty"`
	IdleRefused int             `json:"idle_refused,omitempty"`
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "kvbench:", err)
		return 2
	}
	p, err := protocolByName(o.proto)
	if err != nil {
		fmt.Fprintln(stderr, "kvbench:", err)
		return 2
	}
	get, put, err := parseRatio(o.ratio)
	if err != nil {
		fmt.Fprintln(stderr, "kvbench:", err)
		return 2
	}

	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			fmt.Fprintln(stderr, "kvbench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "kvbench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	stop := new(atomic.Bool)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			stop.Store(true)
		}
	}()

	if o.idle > 0 {
		return runIdle(o, p, stop, stdout, stderr)
	}

	cfg := &config{
		addr: o.addr, proto: p, conns: o.conns, pipeline: o.pipeline,
		duration: o.duration, requests: o.requests, rate: o.rate, get: get, put: put,
		txn: o.txn, txnKeys: o.txnKeys, keys: newKeyspace(o.keys),
		value: makeValue(o.vsize), seed: o.seed,
	}
	s, err := bench(cfg, o, stop, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kvbench:", err)
		return 1
	}
	if o.jsonOut {
		b, _ := json.Marshal(s)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printSummary(stdout, s)
	}
	if s.ConnErrors > 0 {
		return 1
	}
	return 0
}

// dialAll opens n connections to addr, at most 64 connects at a time.
func dialAll(addr string, n int, timeout time.Duration) ([]net.Conn, []error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = net.DialTimeout("tcp", addr, timeout)
		}(i)
	}
	wg.Wait()
	return conns, errs
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func bench(cfg *config, o *options, stop *atomic.Bool, stderr io.Writer) (*summary, error) {
	conns, errs := dialAll(cfg.addr, cfg.conns, o.dialTO)
	defer closeAll(conns)
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", cfg.addr, err)
		}
	}
	workers := make([]*worker, cfg.conns)
	for i, c := range conns {
		workers[i] = newWorker(i, cfg, c)
	}
	s := &summary{
		Proto: cfg.proto.name(), Addr: cfg.addr, Conns: cfg.conns, Pipeline: cfg.pipeline,
		Ratio: o.ratio, Keys: cfg.keys.n, ValueSize: len(cfg.value), TxnShare: cfg.txn,
	}
	if cfg.txn > 0 {
		s.TxnKeys = cfg.txnKeys
	}

	if o.prefill {
		t0 := time.Now()
		if !o.quiet {
			fmt.Fprintf(stderr, "prefill: writing %d keys of %d bytes over %d connections\n", cfg.keys.n, len(cfg.value), cfg.conns)
		}
		var wg sync.WaitGroup
		var refused atomic.Uint64
		errc := make(chan error, len(workers))
		for i, w := range workers {
			lo, hi := cfg.keys.n*i/len(workers), cfg.keys.n*(i+1)/len(workers)
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := w.prefill(lo, hi, max(cfg.pipeline, 256))
				refused.Add(n)
				if err != nil {
					errc <- err
				}
			}()
		}
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return nil, fmt.Errorf("prefill: %w", err)
		}
		if n := refused.Load(); n > 0 {
			return nil, fmt.Errorf("prefill: %d writes refused; first: %s", n, firstError(workers))
		}
		s.PrefillSec = time.Since(t0).Seconds()
		if !o.quiet {
			fmt.Fprintf(stderr, "prefill: done in %.2fs\n", s.PrefillSec)
		}
		if o.loadOnly {
			return s, nil
		}
	}

	var wg sync.WaitGroup
	start := time.Now()
	for i, w := range workers {
		budget := int64(0)
		if cfg.requests > 0 {
			budget = cfg.requests*int64(i+1)/int64(len(workers)) - cfg.requests*int64(i)/int64(len(workers))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(stop, budget)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var timer <-chan time.Time
	if cfg.requests == 0 {
		timer = time.After(cfg.duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastOps uint64
	lastT := start
wait:
	for {
		select {
		case <-done:
			break wait
		case <-timer:
			stop.Store(true)
			timer = nil
			// Workers finish their current batch; a server that stops
			// answering is cut off after the grace period.
			go func() {
				select {
				case <-done:
				case <-time.After(o.graceTime):
					closeAll(conns)
				}
			}()
		case now := <-tick.C:
			if o.quiet {
				continue
			}
			var ops, errc uint64
			for _, w := range workers {
				ops += w.progress.Load()
				errc += w.errCount.Load()
			}
			rate := float64(ops-lastOps) / now.Sub(lastT).Seconds()
			fmt.Fprintf(stderr, "[%5.1fs] %10.0f ops/s  %12d ops  %d errors\n", now.Sub(start).Seconds(), rate, ops, errc)
			lastOps, lastT = ops, now
		}
	}
	elapsed := time.Since(start)

	var lat, txnLat histogram
	for _, w := range workers {
		lat.merge(&w.lat)
		txnLat.merge(&w.txnLat)
		s.Ops += w.ops
		s.Requests += w.requests
		s.Errors += w.errs
		s.Misses += w.misses
		s.Txns += w.txns
		s.Conflicts += w.conflicts
		if w.connErr != nil {
			s.ConnErrors++
			if s.FirstError == "" {
				s.FirstError = fmt.Sprintf("connection %d: %v", w.id, w.connErr)
			}
		}
	}
	if s.FirstError == "" {
		s.FirstError = firstError(workers)
	}
	s.Seconds = elapsed.Seconds()
	s.OpsPerSec = float64(s.Ops) / s.Seconds
	s.ReqPerSec = float64(s.Requests) / s.Seconds
	s.Latency = summarize(&lat)
	if txnLat.total > 0 {
		t := summarize(&txnLat)
		s.TxnLatency = &t
	}
	return s, nil
}

func firstError(workers []*worker) string {
	for _, w := range workers {
		if w.firstErr != "" {
			return w.firstErr
		}
	}
	return ""
}

func printSummary(w io.Writer, s *summary) {
	fmt.Fprintf(w, "kvbench: %s at %s, %d connections, pipeline %d, GET:PUT %s, %d keys, %d-byte values",
		s.Proto, s.Addr, s.Conns, s.Pipeline, s.Ratio, s.Keys, s.ValueSize)
	if s.TxnShare > 0 {
		fmt.Fprintf(w, ", %.0f%% transactions of %d keys", s.TxnShare*100, s.TxnKeys)
	}
	fmt.Fprintln(w)
	if s.PrefillSec > 0 {
		fmt.Fprintf(w, "  prefill      %.2f s\n", s.PrefillSec)
	}
	if s.Seconds == 0 {
		return
	}
	fmt.Fprintf(w, "  throughput   %.0f ops/s (%d ops in %.2f s; %.0f requests/s)\n", s.OpsPerSec, s.Ops, s.Seconds, s.ReqPerSec)
	fmt.Fprintf(w, "  errors       %d (misses %d, broken connections %d)\n", s.Errors, s.Misses, s.ConnErrors)
	if s.FirstError != "" {
		fmt.Fprintf(w, "  first error  %s\n", s.FirstError)
	}
	printLatency(w, "latency", s.Latency)
	if s.TxnLatency != nil {
		pct := 0.0
		if s.Txns > 0 {
			pct = 100 * float64(s.Conflicts) / float64(s.Txns)
		}
		fmt.Fprintf(w, "  txns         %d, conflicts %d (%.2f%%)\n", s.Txns, s.Conflicts, pct)
		printLatency(w, "txn latency", *s.TxnLatency)
	}
}

func printLatency(w io.Writer, name string, l latencySummary) {
	fmt.Fprintf(w, "  %-12s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n", name,
		fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max), fmtUS(l.Mean))
}

func fmtUS(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.0fus", us)
}

// runIdle opens o.idle connections, checks each with one request, holds
// them for o.duration (or until interrupted) and closes them.
func runIdle(o *options, p protocol, stop *atomic.Bool, stdout, stderr io.Writer) int {
	t0 := time.Now()
	conns, errs := dialAll(o.addr, o.idle, o.dialTO)
	defer closeAll(conns)
	refused := 0
	var firstErr error
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range conns {
		if errs[i] != nil {
			refused++
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.SetDeadline(time.Now().Add(o.dialTO))
			err := ping(c, bufio.NewReaderSize(c, 512), p)
			c.SetDeadline(time.Time{})
			if err != nil {
				mu.Lock()
				refused++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	open := o.idle - refused
	if !o.quiet {
		fmt.Fprintf(stderr, "idle: %d connections open, %d refused, in %.2fs; holding for %s\n", open, refused, time.Since(t0).Seconds(), o.duration)
		if firstErr != nil {
			fmt.Fprintf(stderr, "idle: first failure: %v\n", firstErr)
		}
	}
	s := &summary{Proto: p.name(), Addr: o.addr, Conns: o.idle, IdleOpen: open, IdleRefused: refused}
	if firstErr != nil {
		s.FirstError = firstErr.Error()
	}
	if o.jsonOut {
		b, _ := json.Marshal(s)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stdout, "idle: %d open, %d refused\n", open, refused)
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	deadline := time.Now().Add(o.duration)
	for time.Now().Before(deadline) && !stop.Load() {
		time.Sleep(50 * time.Millisecond)
	}
	if refused > 0 {
		return 1
	}
	return 0
}
