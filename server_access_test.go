package kvstore

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func TestServerAuth(t *testing.T) { eachBackend(t, testServerAuth) }

func testServerAuth(t *testing.T, backend Option) {
	ts := startServer(t, backend, WithPassword("open sesame"))
	ts.store.Put("k", "v")
	c := ts.dial(t)
	for _, req := range []string{"GET k", "PUT k x", "DEL k", "START", "COMMIT", "ROLLBACK", "STATS", "COMPACT"} {
		got := c.do(req)[0]
		if !strings.HasPrefix(got, `{"status":"Error","mesg":"authentication required`) {
			t.Fatalf("%s before AUTH: %s", req, got)
		}
	}
	if v, _ := ts.store.Get("k"); v != "v" || ts.store.Len() != 1 {
		t.Fatalf("requests refused before AUTH changed the store: k=%q len %d", v, ts.store.Len())
	}
	if got := c.do("PING", "HELP")[0]; got != `{"status":"Ok","result":"PONG"}` {
		t.Fatalf("PING before AUTH: %s", got)
	}
	for _, wrong := range []string{"AUTH open", "AUTH open sesame!", "AUTH Open sesame", "AUTH  open sesame x"} {
		if got := c.do(wrong)[0]; got != respErr(mesgBadPassword) {
			t.Fatalf("%q: %s", wrong, got)
		}
	}
	if got := c.do("AUTH")[0]; !strings.Contains(got, "wrong number of arguments") {
		t.Fatalf("AUTH without a password: %s", got)
	}
	// The password is the rest of the line, spaces included.
	if got := c.do("auth open sesame", "GET k"); got[0] != `{"status":"Ok"}` || got[1] != `{"status":"Ok","result":"v"}` {
		t.Fatalf("after AUTH: %q", got)
	}
	// Another connection is not authenticated by this one.
	c2 := ts.dial(t)
	if got := c2.do("GET k")[0]; !strings.Contains(got, "authentication required") {
		t.Fatalf("second connection: %s", got)
	}
	c2.send("EXIT\n")
	if got := c2.recv(); got != `{"status":"Ok","mesg":"Bye"}` {
		t.Fatalf("EXIT before AUTH: %s", got)
	}
}

func TestServerAuthWithoutPassword(t *testing.T) {
	ts := startServer(t)
	if got := ts.dial(t).do("AUTH x")[0]; got != respErr(mesgNoPassword) {
		t.Fatalf("AUTH with no password set: %s", got)
	}
}

// stats sends STATS and decodes the result object.
func (tc *testClient) stats() map[string]float64 {
	tc.t.Helper()
	line := tc.do("STATS")[0]
	var resp struct {
		Status string
		Result map[string]float64
	}
	if err := json.Unmarshal([]byte(line), &resp); err != nil || resp.Status != "Ok" {
		tc.t.Fatalf("STATS: %s (%v)", line, err)
	}
	return resp.Result
}

func TestServerStats(t *testing.T) { eachBackend(t, testServerStats) }

func testServerStats(t *testing.T, backend Option) {
	ts := startServer(t, backend)
	a, b := ts.dial(t), ts.dial(t)
	waitFor(t, "both clients to be accepted", func() bool { return ts.numConns() == 2 })
	before := a.stats()
	for _, k := range []string{"keys", "connections", "commands", "commits", "conflicts", "uptime_seconds", "memory", "heap_bytes", "runtime_bytes"} {
		if _, ok := before[k]; !ok {
			t.Fatalf("STATS has no %q: %v", k, before)
		}
	}
	if before["connections"] != 2 || before["keys"] != 0 {
		t.Fatalf("STATS at start: %v", before)
	}
	a.do("PUT x 1", "PUT y 2", "START", "PUT z 3", "COMMIT")
	// A conflict: a reads x in a transaction, b changes it, a commits.
	a.do("START", "GET x", "PUT w 1")
	b.do("PUT x 9")
	if got := a.do("COMMIT")[0]; !strings.Contains(got, "conflict") {
		t.Fatalf("COMMIT after a concurrent write: %s", got)
	}
	b.do("EXIT")
	waitFor(t, "b to disconnect", func() bool { return ts.numConns() == 1 })
	after := a.stats()
	want := map[string]float64{"keys": 3, "connections": 1, "commits": 4, "conflicts": 1}
	for k, v := range want {
		if after[k] != v {
			t.Errorf("STATS %s = %v, want %v (all: %v)", k, after[k], v, after)
		}
	}
	// 1 STATS + 5 + 3 + 1 + COMMIT by a, and PUT + EXIT by b, then this STATS.
	if after["commands"] != before["commands"]+12 {
		t.Errorf("commands went from %v to %v, want +12", before["commands"], after["commands"])
	}
	if after["memory"] <= before["memory"] || after["runtime_bytes"] <= 0 {
		t.Errorf("memory figures: before %v, after %v", before, after)
	}
	if st := ts.Stats(); st.Commits != 4 || st.Keys != 3 {
		t.Errorf("Server.Stats: %+v", st)
	}
}

// testPKI is a CA and certificates it signed, made in the test.
type testPKI struct {
	pool             *x509.CertPool
	server, client   tls.Certificate
	strangerCertPair tls.Certificate // signed by another CA
}

func newCert(t testing.TB, cn string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

func newTestPKI(t testing.TB) testPKI {
	ca, caKey, _ := newCert(t, "kvd test CA", true, nil, nil)
	other, otherKey, _ := newCert(t, "other CA", true, nil, nil)
	var p testPKI
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	_, _, p.server = newCert(t, "kvd server", false, ca, caKey)
	_, _, p.client = newCert(t, "kvd client", false, ca, caKey)
	_, _, p.strangerCertPair = newCert(t, "stranger", false, other, otherKey)
	return p
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*testClient, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return &testClient{t: t, c: c, br: bufio.NewReader(c)}, nil
}

func TestServerTLS(t *testing.T) {
	pki := newTestPKI(t)
	ts := startServer(t, WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}))
	c, err := dialTLS(t, ts.addr, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.do("PUT k v", "GET k"); got[1] != `{"status":"Ok","result":"v"}` {
		t.Fatalf("over TLS: %q", got)
	}
	// A plain-text client is closed without an answer in clear text, and
	// the server keeps serving.
	plain := ts.dial(t)
	plain.send("PING\n")
	if line, err := plain.br.ReadString('\n'); err == nil || strings.Contains(line, "PONG") {
		t.Fatalf("plain-text client on the TLS port read %q, %v; want the connection closed", line, err)
	}
	c2, err := dialTLS(t, ts.addr, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.do("GET k")[0]; got != `{"status":"Ok","result":"v"}` {
		t.Fatalf("after a plain-text client: %s", got)
	}
	c.do("EXIT")
	c2.do("EXIT")
}

func TestServerMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	ts := startServer(t, WithTLSConfig(&tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}))
	good, err := dialTLS(t, ts.addr, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}})
	if err != nil {
		t.Fatal(err)
	}
	if got := good.do("PING")[0]; got != `{"status":"Ok","result":"PONG"}` {
		t.Fatalf("mTLS with a good certificate: %s", got)
	}
	// TLS 1.3 reports a rejected client certificate on the first read.
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "foreign CA": {pki.strangerCertPair}} {
		bad, err := dialTLS(t, ts.addr, &tls.Config{RootCAs: pki.pool, Certificates: certs})
		if err != nil {
			continue // refused in the handshake
		}
		bad.c.Write([]byte("PING\n"))
		if line, err := bad.br.ReadString('\n'); err == nil {
			t.Fatalf("%s: served %q", name, line)
		}
	}
	if got := good.do("PING")[0]; got != `{"status":"Ok","result":"PONG"}` {
		t.Fatalf("after rejected clients: %s", got)
	}
	good.do("EXIT")
}
