package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/kvd-dev/kvstore"
)

// metricsExporter turns a server's Stats into Prometheus metrics (kvd_
// prefix) with github.com/VictoriaMetrics/metrics, refreshed on every
// scrape. Only cmd/kvd imports the library: programs that embed the
// Store do not.
type metricsExporter struct {
	stats func() kvstore.Stats
	set   *metrics.Set

	mu       sync.Mutex // serializes scrapes: counters are set, then written
	commits  *metrics.Counter
	conflict *metrics.Counter
	byCmd    map[string]*metrics.Counter
}

func init() { metrics.ExposeMetadata(true) } // # HELP and # TYPE lines

func newMetricsExporter(stats func() kvstore.Stats) *metricsExporter {
	e := &metricsExporter{stats: stats, set: metrics.NewSet(), byCmd: map[string]*metrics.Counter{}}
	e.commits = e.set.NewCounter("kvd_commits_total")
	e.conflict = e.set.NewCounter("kvd_conflicts_total")
	return e
}

// ServeHTTP writes the metrics in the Prometheus text format.
func (e *metricsExporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats()
	e.commits.Set(st.Commits)
	e.conflict.Set(st.Conflicts)
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
