//go:build linux || darwin

package ops

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ioTimeout bounds every network step of the test.
const ioTimeout = 10 * time.Second

var (
	buildOnce sync.Once
	kvdBin    string
	buildErr  error
)

// kvdBinary builds cmd/kvd once per test run (KVD_TEST_BINARY names a
// prebuilt one instead, as in package faults).
func kvdBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KVD_TEST_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kvd-ops-")
		if err != nil {
			buildErr = err
			return
		}
		kvdBin = filepath.Join(dir, "kvd")
		if out, err := exec.Command("go", "build", "-o", kvdBin, "github.com/kvd-dev/kvstore/cmd/kvd").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building cmd/kvd: %v", buildErr)
	}
	return kvdBin
}

var (
	listeningRE = regexp.MustCompile(`msg="kvd listening" addr=(\S+)`)
	metricsRE   = regexp.MustCompile(`msg="kvd metrics listening" addr=(\S+)`)
)

// startKVD runs kvd on loopback ports with -metrics-addr and a password
// (KVD_PASSWORD), and returns its protocol and metrics addresses. The
// process is killed at the end of the test.
func startKVD(t *testing.T, password string) (addr, metricsAddr string) {
	t.Helper()
	cmd := exec.Command(kvdBinary(t), "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "KVD_PASSWORD="+password)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	found := make(chan [2]string, 1)
	go func() {
		var a [2]string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				a[0] = m[1]
			}
			if m := metricsRE.FindStringSubmatch(sc.Text()); m != nil {
				a[1] = m[1]
			}
			if a[0] != "" && a[1] != "" {
				found <- a
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-found:
		return a[0], a[1]
	case <-exited:
		t.Fatal("kvd exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("kvd did not listen within 30s")
	}
	return "", ""
}

// client is one connection that counts the bytes it sends and receives.
type client struct {
	t              *testing.T
	c              net.Conn
	br             *bufio.Reader
	sent, received int
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes data in one write and reads n response lines.
func (c *client) send(data string, n int) []string {
	c.t.Helper()
	if _, err := io.WriteString(c.c, data); err != nil {
		c.t.Fatal(err)
	}
	c.sent += len(data)
	var resps []string
	for range n {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("after %q: %v", line, err)
		}
		c.received += len(line)
		resps = append(resps, strings.TrimSuffix(line, "\n"))
	}
	return resps
}

// sendAndHalfClose writes data, closes the sending side, and reads one
// response line.
func (c *client) sendAndHalfClose(data string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.c, data); err != nil {
		c.t.Fatal(err)
	}
	c.sent += len(data)
	if err := c.c.(*net.TCPConn).CloseWrite(); err != nil {
		c.t.Fatal(err)
	}
	line, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("after %q: %v", line, err)
	}
	c.received += len(line)
	return strings.TrimSuffix(line, "\n")
}

// do sends each request and reads its response.
func (c *client) do(reqs ...string) []string {
	c.t.Helper()
	var out []string
	for _, r := range reqs {
		out = append(out, c.send(r+"\n", 1)...)
	}
	return out
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, hc *http.Client, metricsAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := hc.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("/metrics Content-Type %q is not the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// value returns the value of the counter or gauge name whose labels
// include labels ("k=v" pairs), and fails if there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		}
		t.Fatalf("%s is a %s", name, f.GetType())
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestMetricsScrape runs the real kvd with -metrics-addr and a password,
// sends known traffic (errors of several kinds, a conflict, a pipelined
// batch, a half-close), scrapes /metrics over HTTP, parses it with expfmt
// and checks the figures against the traffic; then /debug/pprof/.
func TestMetricsScrape(t *testing.T) {
	addr, maddr := startKVD(t, "s3cret")
	hc := &http.Client{Timeout: ioTimeout}

	a, b := dial(t, addr), dial(t, addr)
	gets := 0
	mustPrefix := func(got, prefix string) {
		t.Helper()
		if !strings.HasPrefix(got, prefix) {
			t.Fatalf("got %s, want %s...", got, prefix)
		}
	}
	const errPrefix = `{"status":"Error","mesg":"`
	mustPrefix(a.do("GET k")[0], errPrefix+"authentication required") // GET #1
	gets++
	mustPrefix(a.do("AUTH wrong")[0], errPrefix+"invalid password")
	a.do("AUTH s3cret", "PUT k 1")
	mustPrefix(a.do("GET missing")[0], errPrefix+"key not found")
	mustPrefix(a.do("BOGUS")[0], errPrefix+"unknown command")
	gets++
	// A pipelined batch of GETs in one write.
	resps := a.send(strings.Repeat("GET k\n", 100), 100)
	gets += 100
	for _, r := range resps {
		if r != `{"status":"Ok","result":"1"}` {
			t.Fatalf("pipelined GET: %s", r)
		}
	}
	// A conflict: a reads k in a transaction and writes, b changes k.
	a.do("START", "GET k", "PUT w 1")
	gets++
	b.do("AUTH s3cret", "PUT k 2")
	mustPrefix(a.do("COMMIT")[0], errPrefix+"conflict")
	// A last line without "\n", then a half-close.
	mustPrefix(b.sendAndHalfClose("PUT half"), errPrefix+"incomplete request")

	sent := a.sent + b.sent
	received := a.received + b.received
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(ioTimeout)
	for {
		fams = scrape(t, hc, maddr)
		// A response's bytes are counted once its write returns, which
		// may be just after the client has read it.
		if value(t, fams, "kvd_bytes_out_total") >= float64(received) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	for name, typ := range map[string]dto.MetricType{
		"kvd_commands_total": dto.MetricType_COUNTER, "kvd_errors_total": dto.MetricType_COUNTER,
		"kvd_commits_total": dto.MetricType_COUNTER, "kvd_conflicts_total": dto.MetricType_COUNTER,
		"kvd_bytes_in_total": dto.MetricType_COUNTER, "kvd_bytes_out_total": dto.MetricType_COUNTER,
		"kvd_connections": dto.MetricType_GAUGE, "kvd_keys": dto.MetricType_GAUGE, "kvd_memory_bytes": dto.MetricType_GAUGE,
		"kvd_request_duration_seconds": dto.MetricType_HISTOGRAM,
	} {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("%s: %v, want a %s", name, f, typ)
		}
	}
	if got := value(t, fams, "kvd_commands_total", "cmd=GET"); got != float64(gets) {
		t.Errorf("kvd_commands_total{cmd=GET} = %v, want %d", got, gets)
	}
	for kind, want := range map[string]float64{
		"auth_required": 1, "invalid_password": 1, "key_not_found": 1, "unknown_command": 1,
		"conflict": 1, "incomplete_request": 1, "wrong_arguments": 0, "out_of_memory": 0,
	} {
		if got := value(t, fams, "kvd_errors_total", "kind="+kind); got != want {
			t.Errorf("kvd_errors_total{kind=%s} = %v, want %v", kind, got, want)
		}
	}
	if got := value(t, fams, "kvd_conflicts_total"); got != 1 {
		t.Errorf("kvd_conflicts_total = %v", got)
	}
	if got := value(t, fams, "kvd_commits_total"); got != 2 { // PUT k 1, PUT k 2
		t.Errorf("kvd_commits_total = %v, want 2", got)
	}
	if got := value(t, fams, "kvd_bytes_in_total"); got != float64(sent) {
		t.Errorf("kvd_bytes_in_total = %v, want the %d bytes sent", got, sent)
	}
	if got := value(t, fams, "kvd_bytes_out_total"); got != float64(received) {
		t.Errorf("kvd_bytes_out_total = %v, want the %d bytes received", got, received)
	}
	if got := value(t, fams, "kvd_keys"); got != 1 {
		t.Errorf("kvd_keys = %v", got)
	}

	// The histogram: one count per executed request, log2 buckets from
	// 1 µs to 2^24 µs, cumulative.
	var commands float64
	for _, m := range fams["kvd_commands_total"].Metric {
		commands += m.GetCounter().GetValue()
	}
	h := fams["kvd_request_duration_seconds"].Metric[0].GetHistogram()
	if float64(h.GetSampleCount()) != commands || commands < float64(gets) {
		t.Errorf("histogram count %d, commands %v", h.GetSampleCount(), commands)
	}
	if h.GetSampleSum() <= 0 || h.GetSampleSum() > commands*ioTimeout.Seconds() {
		t.Errorf("histogram sum %v s for %v requests", h.GetSampleSum(), commands)
	}
	var prev uint64
	finite := 0
	for _, bk := range h.Bucket {
		if bk.GetCumulativeCount() < prev {
			t.Errorf("bucket le=%v: %d after %d: not cumulative", bk.GetUpperBound(), bk.GetCumulativeCount(), prev)
		}
		prev = bk.GetCumulativeCount()
		if math.IsInf(bk.GetUpperBound(), 1) {
			continue
		}
		if want := math.Ldexp(1e-6, finite); bk.GetUpperBound() != want {
			t.Errorf("bucket %d: le=%v, want %v", finite, bk.GetUpperBound(), want)
		}
		finite++
	}
	if finite != 25 || prev > h.GetSampleCount() {
		t.Errorf("%d finite buckets (want 25), last cumulative %d of %d", finite, prev, h.GetSampleCount())
	}

	// STATS has the totals as numbers too.
	st := a.do("STATS")[0]
	for _, field := range []string{`"errors":6`, `"bytes_in":`, `"bytes_out":`} {
		if !strings.Contains(st, field) {
			t.Errorf("STATS %s has no %s", st, field)
		}
	}

	// The profiler answers.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
		resp, err := hc.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
			t.Errorf("%s: %s %.200q", path, resp.Status, body)
		}
	}
}
