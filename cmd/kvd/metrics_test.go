package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// TestMetricsEndpoint checks that serveMetrics serves the exporter's page
// and the profiler. The page is parsed with a real Prometheus parser, and
// its values checked against traffic, by TestMetricsScrape in the tests
// module (tests/ops), which may import one; here it is only looked at.
func TestMetricsEndpoint(t *testing.T) {
	store := kvstore.New()
	srv := kvstore.NewServer(store, kvstore.WithAddr("127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.ListenAndServe(ctx) }()
	maddr, metricsDone, err := serveMetrics(ctx, "127.0.0.1:0", srv.Stats, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		<-serveDone
		<-metricsDone
	}()
	for srv.Addr() == nil {
		time.Sleep(time.Millisecond)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	scrape := func() string { t.Helper(); return scrapeMetrics(t, client, maddr) }

	c, err := net.DialTimeout("tcp", srv.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, req := range []string{"PUT a 1", "PUT b 2", "GET a", "GET nope", "START", "PUT c 3", "COMMIT"} {
		c.Write([]byte(req + "\n"))
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	page := scrape()
	for _, line := range []string{
		"# TYPE kvd_commands_total counter", `kvd_commands_total{cmd="PUT"} 3`, `kvd_commands_total{cmd="GET"} 2`,
		"# TYPE kvd_errors_total counter", `kvd_errors_total{kind="key_not_found"} 1`, `kvd_errors_total{kind="conflict"} 0`,
		"# TYPE kvd_commits_total counter", "kvd_commits_total 3", "# TYPE kvd_conflicts_total counter",
		"# TYPE kvd_bytes_in_total counter", "# TYPE kvd_bytes_out_total counter",
		"# TYPE kvd_request_duration_seconds histogram", `kvd_request_duration_seconds_bucket{le="1e-06"} `,
		`kvd_request_duration_seconds_bucket{le="+Inf"} 7`, "kvd_request_duration_seconds_count 7",
		"# TYPE kvd_keys gauge", "kvd_keys 3", "# TYPE kvd_connections gauge", "kvd_connections 1",
		"# TYPE kvd_memory_bytes gauge",
	} {
		if !strings.Contains(page, "\n"+line) {
			t.Errorf("no line %q in\n%s", line, page)
		}
	}

	if strings.Contains(page, "kvd_log_bytes") || strings.Contains(page, "kvd_compactions_total") {
		t.Errorf("durability metrics of a store in memory:\n%s", page)
	}

	resp, err := client.Get("http://" + maddr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine: %s %.80q", resp.Status, body)
	}
}

// TestMetricsDurability: a durable store's log and snapshot figures and
// its compactions, as STATS has them, are on the page.
func TestMetricsDurability(t *testing.T) {
	store, err := kvstore.Open(t.TempDir(), kvstore.WithAutoCompact(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := kvstore.NewServer(store)
	ctx, cancel := context.WithCancel(context.Background())
	maddr, metricsDone, err := serveMetrics(ctx, "127.0.0.1:0", srv.Stats, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-metricsDone }()
	client := &http.Client{Timeout: 10 * time.Second}
	scrape := func() string { t.Helper(); return scrapeMetrics(t, client, maddr) }
	check := func(page string, lines ...string) {
		t.Helper()
		for _, line := range lines {
			if !strings.Contains(page, "\n"+line+"\n") {
				t.Errorf("no line %q in\n%s", line, page)
			}
		}
	}
	check(scrape(), "# TYPE kvd_compactions_total counter", "kvd_compactions_total 0", "# TYPE kvd_log_bytes gauge",
		"kvd_log_bytes 8", "kvd_snapshot_bytes 0", "# TYPE kvd_snapshot_timestamp_seconds gauge", "kvd_snapshot_timestamp_seconds 0")
	for _, k := range []string{"a", "b", "c"} {
		if err := store.Put(k, "value"); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Compact(); err != nil {
		t.Fatal(err)
	}
	d := store.DurabilityStats()
	check(scrape(), "kvd_compactions_total 1", "kvd_log_bytes "+strconv.FormatInt(d.LogBytes, 10),
		"kvd_snapshot_bytes "+strconv.FormatInt(d.SnapshotBytes, 10), "kvd_snapshot_timestamp_seconds "+strconv.FormatInt(d.SnapshotUnix, 10))
	if d.SnapshotBytes == 0 || d.SnapshotUnix == 0 {
		t.Errorf("DurabilityStats after a compaction: %+v", d)
	}
}

// scrapeMetrics fetches the exporter's page at addr and checks that it is
// served as Prometheus text.
func scrapeMetrics(t *testing.T, client *http.Client, addr net.Addr) string {
	t.Helper()
	resp, err := client.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(body)
}
