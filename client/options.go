package client

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// Defaults of the options.
const (
	// DefaultPoolSize is the number of shared connections when
	// WithPoolSize is not given.
	DefaultPoolSize = 2
	// DefaultDialTimeout bounds connecting (TCP, TLS handshake and AUTH)
	// when WithDialTimeout is not given.
	DefaultDialTimeout = 10 * time.Second
	// DefaultStallTimeout is the stall timeout when WithStallTimeout is
	// not given.
	DefaultStallTimeout = 30 * time.Second
	// DefaultMaxResponseBytes is the longest response line accepted when
	// WithMaxResponseBytes is not given.
	DefaultMaxResponseBytes = 64 << 20
)

// Option configures a Client; pass options to Dial.
type Option func(*config)

type config struct {
	password     string
	hasPassword  bool
	tls          *tls.Config
	poolSize     int
	dialTimeout  time.Duration
	maxResponse  int
	stallTimeout time.Duration
	dialer       func(ctx context.Context, network, addr string) (net.Conn, error)
}

func defaultConfig() config {
	return config{
		poolSize:     DefaultPoolSize,
		dialTimeout:  DefaultDialTimeout,
		maxResponse:  DefaultMaxResponseBytes,
		stallTimeout: DefaultStallTimeout,
	}
}

// WithPassword makes the Client send "AUTH <password>" first on every new
// connection, for a server started with a password (-password-file or
// KVD_PASSWORD). Dial fails with an error matching ErrInvalidPassword if
// the server refuses it. A password the protocol cannot carry (see
// ErrInvalidValue) makes Dial fail without connecting.
func WithPassword(password string) Option {
	return func(c *config) { c.password, c.hasPassword = password, true }
}

// WithTLS makes the Client speak TLS, configured by cfg, on every
// connection (for a server started with -tls-cert and -tls-key). When
// cfg.ServerName is empty, the host part of the address is used. A client
// certificate for -tls-client-ca goes in cfg.Certificates. nil means plain
// TCP.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithPoolSize sets how many connections the Client shares among
// concurrent single-key requests (default DefaultPoolSize), and how many
// idle connections it keeps for transactions. Each shared connection
// pipelines any number of concurrent requests, so a few are enough; more
// help when one connection's round trips, rather than the server, limit
// throughput. Values below 1 mean 1.
func WithPoolSize(n int) Option {
	return func(c *config) {
		if n < 1 {
			n = 1
		}
		c.poolSize = n
	}
}

// WithDialTimeout bounds how long connecting may take, including the TLS
// handshake and AUTH (default DefaultDialTimeout); the context of the call
// that connects bounds it too. Zero or less means no bound other than the
// context.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) { c.dialTimeout = d }
}

// WithMaxResponseBytes sets the longest response line the Client accepts
// (default DefaultMaxResponseBytes). A longer line fails the connection
// with an error wrapping ErrProtocol, so that a broken or hostile server
// cannot make the Client buffer without bound. Raise it for values or
// listing pages near the server's own limits. Values below 1 KiB mean
// 1 KiB.
func WithMaxResponseBytes(n int) Option {
	return func(c *config) {
		if n < 1<<10 {
			n = 1 << 10
		}
		c.maxResponse = n
	}
}

// WithDialer makes the Client open its connections with dial instead of
// a net.Dialer, e.g. to go through a proxy or to wrap connections in
// tests. The Client calls it with network "tcp" and its address; TLS, when
// configured, runs over the connection dial returns. nil restores the
// default.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(c *config) { c.dialer = dial }
}

// WithStallTimeout sets how long a connection may have requests waiting
// without receiving any response before the Client gives up on it
// (default DefaultStallTimeout). The check runs when a call's context ends
// before its response arrived: if the server has answered nothing on that
// connection for longer than d, the connection is closed (its waiting
// calls fail) and the next call dials a new one, so that a server that
// hangs without closing does not keep a pool slot forever. Responses that
// merely arrive late never trigger it. Zero or less turns the check off.
func WithStallTimeout(d time.Duration) Option {
	return func(c *config) { c.stallTimeout = d }
}
