package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/kvd-dev/kvstore"
)

// TestAuth: against a real Server with a password, every new connection
// of the Client authenticates first (shared ones and transaction ones); a
// wrong password fails Dial; a Client without one gets ErrAuthRequired.
func TestAuth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t, WithPassword("pass with spaces"), WithPoolSize(3))
		for range 6 { // reaches every shared slot
			if err := c.Put(ctx, "k", "v"); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Update(ctx, func(tx *Txn) error { return tx.Put(ctx, "t", "x") }); err != nil {
			t.Fatalf("a transaction's connection must authenticate too: %v", err)
		}
		if v, _ := srv.store.Get("t"); v != "x" {
			t.Errorf("t = %q", v)
		}
		if _, err := Dial(ctx, srv.addr, WithPassword("wrong")); !errors.Is(err, ErrInvalidPassword) {
			t.Errorf("Dial with a wrong password = %v; want ErrInvalidPassword", err)
		}
		anon := srv.dial(t) // PING needs no password, so Dial succeeds
		if err := anon.Put(ctx, "k", "x"); !errors.Is(err, ErrAuthRequired) {
			t.Errorf("Put without a password = %v; want ErrAuthRequired", err)
		}
		if _, err := anon.Begin(ctx); !errors.Is(err, ErrAuthRequired) {
			t.Errorf("Begin without a password = %v; want ErrAuthRequired", err)
		}
		if v, _ := srv.store.Get("k"); v != "v" {
			t.Errorf("k = %q: a refused request changed it", v)
		}
	}, kvstore.WithPassword("pass with spaces"))
}

// TestStats: STATS from a real Server, decoded.
func TestStats(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := srv.dial(t)
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keys", "connections", "commands", "commits", "conflicts", "uptime_seconds"} {
		if _, ok := st[name]; !ok {
			t.Errorf("STATS has no %q: %v", name, st)
		}
	}
	if st["keys"] != 3 || st["connections"] < 1 || st["commands"] < 3 {
		t.Errorf("STATS = %v; want 3 keys, at least 1 connection and 3 commands", st)
	}
}

// TestServerTLSConfig: the client against a Server configured with
// WithTLSConfig requiring client certificates (mTLS).
func TestServerTLSConfig(t *testing.T) {
	cert, pool := testCert(t)
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	srv := startServer(t, kvstore.WithTLSConfig(srvCfg))
	ctx := testCtx(t)
	c := srv.dial(t, WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}))
	if err := c.Put(ctx, "k", "mtls"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); v != "mtls" || err != nil {
		t.Fatalf("Get = %q, %v", v, err)
	}
	// Without a client certificate the server ends the handshake.
	if _, err := Dial(ctx, srv.addr, WithTLS(&tls.Config{RootCAs: pool})); err == nil {
		t.Error("Dial without a client certificate succeeded")
	}
	var uerr x509.UnknownAuthorityError
	if _, err := Dial(ctx, srv.addr, WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}})); !errors.As(err, &uerr) {
		t.Errorf("Dial not trusting the server = %v; want an unknown authority error", err)
	}
}
