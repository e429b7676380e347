package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore"
)

// testCert makes a self-signed certificate for 127.0.0.1 and the pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kvd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestTLS: the client speaks TLS to a real Server serving a TLS listener,
// verifying the certificate against the address's host; a client that
// does not trust the certificate fails at Dial.
func TestTLS(t *testing.T) {
	cert, pool := testCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServerOn(t, ln, kvstore.New())
	ctx := testCtx(t)
	c := srv.dial(t, WithTLS(&tls.Config{RootCAs: pool}))
	if err := c.Put(ctx, "k", "over tls"); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, func(tx *Txn) error { return tx.Put(ctx, "t", "x") }); err != nil {
		t.Fatal(err)
	}
	if v, _ := srv.store.Get("k"); v != "over tls" {
		t.Errorf("k = %q", v)
	}
	var uerr x509.UnknownAuthorityError
	if _, err := Dial(ctx, srv.addr, WithTLS(&tls.Config{})); !errors.As(err, &uerr) {
		t.Errorf("Dial without trusting the certificate = %v; want an unknown authority error", err)
	}
	if _, err := Dial(ctx, srv.addr, WithDialTimeout(2*time.Second)); err == nil {
		t.Errorf("plain TCP Dial to a TLS server succeeded")
	}
}
