package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/kvd-dev/kvstore"
)

// metricsExporter turns a server's Stats into Prometheus metrics (kvd_
// prefix) with github.com/VictoriaMetrics/metrics, refreshed on every
// scrape. Only cmd/kvd imports the library: programs that embed the
// Store do not.
//
// The metrics: kvd_commands_total{cmd}, kvd_errors_total{kind} (every
// kind of kvstore.ErrorKinds, zero or not), kvd_commits_total,
// kvd_conflicts_total, kvd_bytes_in_total, kvd_bytes_out_total,
// kvd_request_duration_seconds (a histogram), and the gauges kvd_keys,
// kvd_connections, kvd_memory_bytes, kvd_heap_bytes, kvd_runtime_bytes,
// kvd_uptime_seconds.
type metricsExporter struct {
	stats func() kvstore.Stats
	set   *metrics.Set

	mu       sync.Mutex // serializes scrapes: counters are set, then written
	last     kvstore.Stats
	commits  *metrics.Counter
	conflict *metrics.Counter
	bytesIn  *metrics.Counter
	bytesOut *metrics.Counter
	byCmd    map[string]*metrics.Counter
	byKind   map[string]*metrics.Counter
	// compactions is made by the first scrape of a durable store.
	compactions *metrics.Counter
}

func init() { metrics.ExposeMetadata(true) } // # HELP and # TYPE lines

// latencyMetric is the name of the request latency histogram.
const latencyMetric = "kvd_request_duration_seconds"

func newMetricsExporter(stats func() kvstore.Stats) *metricsExporter {
	e := &metricsExporter{stats: stats, set: metrics.NewSet(), byCmd: map[string]*metrics.Counter{}, byKind: map[string]*metrics.Counter{}}
	e.commits = e.set.NewCounter("kvd_commits_total")
	e.conflict = e.set.NewCounter("kvd_conflicts_total")
	e.bytesIn = e.set.NewCounter("kvd_bytes_in_total")
	e.bytesOut = e.set.NewCounter("kvd_bytes_out_total")
	for _, kind := range kvstore.ErrorKinds() {
		e.byKind[kind] = e.set.NewCounter(`kvd_errors_total{kind="` + kind + `"}`)
	}
	e.set.RegisterMetricsWriter(e.writeLatency)
	return e
}

// latencyBounds are the upper bounds of the histogram's finite buckets,
// in seconds, as the le labels show them.
var latencyBounds = func() []string {
	b := make([]string, kvstore.LatencyBuckets)
	for i := range b {
		b[i] = strconv.FormatFloat(kvstore.LatencyBound(i).Seconds(), 'g', -1, 64)
	}
	return b
}()

// writeLatency writes the latency histogram of the scrape's Stats as a
// Prometheus histogram (cumulative buckets, _sum and _count). The server
// counts requests in fixed buckets with atomic counters, and the
// library's PrometheusHistogram only takes one observation at a time, so
// the bucket counts are written the way the library writes the Go
// runtime's histograms: its metadata helper, then one line per bucket.
// Called by e.set.WritePrometheus, under e.mu.
func (e *metricsExporter) writeLatency(w io.Writer) {
	h := &e.last.Latency
	metrics.WriteMetadataIfNeeded(w, latencyMetric, "histogram")
	var cum uint64
	for i, bound := range latencyBounds {
		cum += h.Counts[i]
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", latencyMetric, bound, cum)
	}
	cum += h.Counts[kvstore.LatencyBuckets]
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", latencyMetric, cum)
	fmt.Fprintf(w, "%s_sum %s\n", latencyMetric, strconv.FormatFloat(h.Sum.Seconds(), 'g', -1, 64))
	fmt.Fprintf(w, "%s_count %d\n", latencyMetric, cum)
}

// ServeHTTP writes the metrics in the Prometheus text format.
func (e *metricsExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats()
	e.last = st
	e.commits.Set(st.Commits)
	e.conflict.Set(st.Conflicts)
	e.bytesIn.Set(st.BytesIn)
	e.bytesOut.Set(st.BytesOut)
	for kind, n := range st.ErrorsByKind {
		if c, ok := e.byKind[kind]; ok {
			c.Set(n)
		}
	}
	names := make([]string, 0, len(st.CommandsByType))
	for name := range st.CommandsByType {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c, ok := e.byCmd[name]
		if !ok {
			c = e.set.NewCounter(`kvd_commands_total{cmd="` + name + `"}`)
			e.byCmd[name] = c
		}
		c.Set(st.CommandsByType[name])
	}
	gauges := metrics.NewSet()
	gauges.NewGauge("kvd_keys", func() float64 { return float64(st.Keys) })
	gauges.NewGauge("kvd_connections", func() float64 { return float64(st.Connections) })
	gauges.NewGauge("kvd_memory_bytes", func() float64 { return float64(st.Memory) })
	gauges.NewGauge("kvd_heap_bytes", func() float64 { return float64(st.HeapBytes) })
	gauges.NewGauge("kvd_runtime_bytes", func() float64 { return float64(st.RuntimeBytes) })
	gauges.NewGauge("kvd_uptime_seconds", func() float64 { return st.UptimeSeconds })
	if d := st.DurabilityStats; d != nil { // kvd -dir only
		if e.compactions == nil {
			e.compactions = e.set.NewCounter("kvd_compactions_total")
		}
		e.compactions.Set(d.Compactions)
		gauges.NewGauge("kvd_log_bytes", func() float64 { return float64(d.LogBytes) })
		gauges.NewGauge("kvd_snapshot_bytes", func() float64 { return float64(d.SnapshotBytes) })
		gauges.NewGauge("kvd_snapshot_timestamp_seconds", func() float64 { return float64(d.SnapshotUnix) })
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	e.set.WritePrometheus(w)
	gauges.WritePrometheus(w)
}

// serveMetrics serves /metrics and /debug/pprof/ on addr until ctx ends.
// It returns once the listener is open (or with its error); the server
// runs on its own goroutine, and done is closed when it has stopped.
func serveMetrics(ctx context.Context, addr string, stats func() kvstore.Stats, log *slog.Logger) (net.Addr, <-chan struct{}, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", newMetricsExporter(stats))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("kvd metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if hs.Shutdown(sctx) != nil {
			hs.Close()
		}
	}()
	log.Info("kvd metrics listening", "addr", ln.Addr().String())
	return ln.Addr(), done, nil
}
