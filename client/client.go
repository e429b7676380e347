package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a connection pool to one kvd server. It is safe for concurrent
// use; create it with Dial and close it with Close.
type Client struct {
	addr string
	cfg  config

	// shared are the pipelined connections for single-key requests; a
	// slot whose connection failed is redialled on its next use.
	shared []slot
	next   atomic.Uint32

	mu     sync.Mutex
	idle   []*conn            // connections for the next transactions
	all    map[*conn]struct{} // every open connection, for Close
	closed bool
}

// slot holds one shared connection.
type slot struct {
	mu sync.Mutex // held while dialling
	c  atomic.Pointer[conn]
}

// Dial connects to the kvd server at addr ("host:port") and returns a
// Client configured by opts. It opens one connection and checks it with a
// PING (after AUTH, with WithPassword), so that a wrong address, password
// or TLS setting fails here; the other connections are opened when first
// needed. ctx bounds the connecting; it is not kept.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.hasPassword {
		if err := checkValue("password", cfg.password); err != nil {
			return nil, err
		}
	}
	c := &Client{
		addr:   addr,
		cfg:    cfg,
		shared: make([]slot, cfg.poolSize),
		all:    make(map[*conn]struct{}),
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.ping(ctx, cn); err != nil {
		cn.close(ErrClosed)
		return nil, err
	}
	c.shared[0].c.Store(cn)
	return c, nil
}

// Addr returns the server address the Client was created with.
func (c *Client) Addr() string { return c.addr }

// Close closes every connection of the Client. Calls in flight and later
// calls fail with ErrClosed; open transactions end, and the server rolls
// them back. Close is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := make([]*conn, 0, len(c.all))
	for cn := range c.all {
		conns = append(conns, cn)
	}
	c.idle = nil
	c.mu.Unlock()
	for _, cn := range conns {
		cn.close(ErrClosed)
	}
	return nil
}

// dial opens and registers a new connection, with TLS and AUTH as
// configured.
func (c *Client) dial(callCtx context.Context) (*conn, error) {
	ctx := callCtx
	if c.cfg.dialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.dialTimeout)
		defer cancel()
	}
	dial := c.cfg.dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", c.addr)
	if err != nil {
		if cerr := ctxErr(callCtx); cerr != nil {
			return nil, fmt.Errorf("client: %w (%v)", cerr, err)
		}
		return nil, fmt.Errorf("client: %w", err)
	}
	if c.cfg.tls != nil {
		tc := tls.Client(nc, c.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			if cerr := ctxErr(callCtx); cerr != nil {
				return nil, fmt.Errorf("client: TLS handshake with %s: %w (%v)", c.addr, cerr, err)
			}
			return nil, fmt.Errorf("client: TLS handshake with %s: %w", c.addr, err)
		}
		nc = tc
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	}
	cn := newConn(nc, c.cfg.maxResponse, c.cfg.stallTimeout, c.forget)
	c.all[cn] = struct{}{}
	c.mu.Unlock()
	if c.cfg.hasPassword {
		cl := getCall()
		cl.req = append(append(append(cl.req, "AUTH "...), c.cfg.password...), '\n')
		if err := expectOk(cn.roundTrip(ctx, cl)); err != nil {
			cn.close(ErrClosed)
			return nil, serverErr("AUTH", err)
		}
	}
	return cn, nil
}

// tlsConfig returns the TLS configuration, with ServerName taken from the
// address when it is not set.
func (c *Client) tlsConfig() *tls.Config {
	cfg := c.cfg.tls
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		if host, _, err := net.SplitHostPort(c.addr); err == nil {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
	}
	return cfg
}

// forget drops a failed connection from the registry.
func (c *Client) forget(cn *conn) {
	c.mu.Lock()
	delete(c.all, cn)
	c.mu.Unlock()
}

// sharedConn returns a working shared connection, dialling one if the slot
// it picks has none.
func (c *Client) sharedConn(ctx context.Context) (*conn, error) {
	s := &c.shared[int(c.next.Add(1)-1)%len(c.shared)]
	if cn := s.c.Load(); cn != nil && !cn.broken.Load() {
		return cn, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cn := s.c.Load(); cn != nil && !cn.broken.Load() {
		return cn, nil
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.c.Store(cn)
	return cn, nil
}

// do sends the request in cl on a shared connection and returns its
// response.
func (c *Client) do(ctx context.Context, cl *call) (response, error) {
	cn, err := c.sharedConn(ctx)
	if err != nil {
		putCall(cl)
		return response{}, err
	}
	return cn.roundTrip(ctx, cl)
}

func (c *Client) ping(ctx context.Context, cn *conn) error {
	cl := getCall()
	cl.req = append(cl.req, "PING\n"...)
	return serverErr("PING", expectOk(cn.roundTrip(ctx, cl)))
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	cn, err := c.sharedConn(ctx)
	if err != nil {
		return err
	}
	return c.ping(ctx, cn)
}

// txnConn returns a connection for a transaction: an idle one (reused) or
// a new one.
func (c *Client) txnConn(ctx context.Context) (cn *conn, reused bool, err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, ErrClosed
	}
	for len(c.idle) > 0 {
		cn := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if !cn.broken.Load() {
			c.mu.Unlock()
			return cn, true, nil
		}
	}
	c.mu.Unlock()
	cn, err = c.dial(ctx)
	return cn, false, err
}

// releaseTxnConn takes back the connection of a transaction that ended
// cleanly.
func (c *Client) releaseTxnConn(cn *conn) {
	c.mu.Lock()
	if !c.closed && !cn.broken.Load() && len(c.idle) < c.cfg.poolSize {
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	cn.close(ErrClosed)
}

// expectOk turns an Error response into a *ServerError (without a command
// name; see serverErr).
func expectOk(resp response, err error) error {
	if err != nil {
		return err
	}
	if !resp.ok {
		return &ServerError{Mesg: resp.mesg}
	}
	return nil
}

// serverErr sets the command name of a *ServerError.
func serverErr(cmd string, err error) error {
	var se *ServerError
	if errors.As(err, &se) && se.Cmd == "" {
		se.Cmd = cmd
	}
	return err
}

// ctxErr returns ctx's error, or context.DeadlineExceeded once its deadline
// has passed even if its timer has not fired yet (network calls that use
// the deadline directly may fail first).
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
