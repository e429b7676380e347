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

// parseExposition parses the Prometheus text format strictly enough to
// catch a malformed page: every sample's family has exactly one # TYPE
// line, before its samples, and every value is a number. It returns the
// samples by their full name (with labels) and the type of each family.
func parseExposition(t *testing.T, page string) (map[string]float64, map[string]string) {
	t.Helper()
	samples, types := map[string]float64{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("bad TYPE line %q", line)
			}
			if _, dup := types[f[2]]; dup {
				t.Fatalf("second TYPE line for %s", f[2])
			}
			types[f[2]] = f[3]
		case strings.HasPrefix(line, "#"):
			t.Fatalf("unexpected comment %q", line)
		default:
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				t.Fatalf("bad sample %q", line)
			}
			name := line[:i]
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("bad value in %q: %v", line, err)
			}
			family, _, _ := strings.Cut(name, "{")
			if _, ok := types[family]; !ok {
				t.Fatalf("sample %q before its family's TYPE line", line)
			}
			samples[name] = v
		}
	}
	return samples, types
}

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
	scrape := func() (map[string]float64, map[string]string) {
		t.Helper()
		resp, err := client.Get("http://" + maddr.String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %s", resp.Status)
		}
		return parseExposition(t, string(body))
	}
	before, _ := scrape()

	c, err := net.DialTimeout("tcp", srv.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, req := range []string{"PUT a 1", "PUT b 2", "GET a", "START", "PUT c 3", "COMMIT"} {
		c.Write([]byte(req + "\n"))
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	after, types := scrape()
	for name, typ := range map[string]string{"kvd_commits_total": "counter", "kvd_conflicts_total": "counter",
		"kvd_commands_total": "counter", "kvd_keys": "gauge", "kvd_connections": "gauge", "kvd_memory_bytes": "gauge"} {
		if types[name] != typ {
			t.Errorf("# TYPE %s = %q, want %s", name, types[name], typ)
		}
	}
	if got := after["kvd_commits_total"] - before["kvd_commits_total"]; got != 3 {
		t.Errorf("kvd_commits_total moved by %v, want 3", got)
	}
	if after[`kvd_commands_total{cmd="PUT"}`] != 3 || after[`kvd_commands_total{cmd="GET"}`] != 1 {
		t.Errorf("commands by type: %v", after)
	}
	if after["kvd_keys"] != 3 || after["kvd_connections"] != 1 || after["kvd_memory_bytes"] <= before["kvd_memory_bytes"] {
		t.Errorf("gauges before %v, after %v", before, after)
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
