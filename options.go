package kvstore

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/kvd-dev/kvstore/internal/sysmem"
)

// Defaults for the Server options.
const (
	// DefaultAddr is the address ListenAndServe listens on.
	DefaultAddr = ":4000"
	// DefaultMaxClients is the number of connections served at once.
	DefaultMaxClients = 10000
	// DefaultMaxLineBytes is the longest request line accepted (1 MiB).
	DefaultMaxLineBytes = 1 << 20
	// DefaultWriteTimeout bounds how long one batch of responses may take
	// to be written to a client before the client is disconnected.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultShutdownTimeout bounds the graceful shutdown that Serve and
	// ListenAndServe perform when their context is cancelled.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxClientOutput bounds the responses the server holds for one
	// client (8 MiB): more than the longest response to a request of the
	// default line limit (a 1 MiB value of control characters is about
	// 6 MiB as JSON).
	DefaultMaxClientOutput = 8 << 20
	// maxDefaultClientMemory caps the default client-memory budget (see
	// WithMaxClientMemory): 1 GiB, or a quarter of the memory available
	// when that is less.
	maxDefaultClientMemory = 1 << 30
)

// Option configures a Server; pass Options to NewServer.
//
// Options never fail: a value out of range keeps the default (see each
// option), so a zero value from an unset flag is harmless.
type Option func(*serverConfig)

type serverConfig struct {
	addr            string
	maxClients      int
	maxLineBytes    int
	idleTimeout     time.Duration
	writeTimeout    time.Duration
	shutdownTimeout time.Duration
	maxTxnDepth     int
	eventLoops      int // eventLoopsAuto: GOMAXPROCS-1, at least 1
	ioUring         bool
	maxClientMemory int64
	maxClientOutput int
	logger          *slog.Logger
	password        string // hashed by NewServer, then cleared
	protectedMode   bool
	tlsConfig       *tls.Config
}

// eventLoopsAuto is the default of WithEventLoops: GOMAXPROCS-1 loops,
// at least one, resolved when the loops start.
const eventLoopsAuto = -1

func defaultConfig() serverConfig {
	return serverConfig{
		addr:            DefaultAddr,
		maxClients:      DefaultMaxClients,
		maxLineBytes:    DefaultMaxLineBytes,
		writeTimeout:    DefaultWriteTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		maxTxnDepth:     DefaultMaxTxnDepth,
		eventLoops:      eventLoopsAuto,
		ioUring:         true,
		maxClientMemory: defaultClientMemory(),
		maxClientOutput: DefaultMaxClientOutput,
		logger:          slog.New(slog.DiscardHandler),
		protectedMode:   true,
	}
}

// WithAddr sets the TCP address ListenAndServe listens on, in the form
// net.Listen accepts ("host:port", ":4000", "127.0.0.1:0"). The default
// is DefaultAddr (":4000"); an empty string keeps it. Serve ignores it.
func WithAddr(addr string) Option {
	return func(c *serverConfig) {
		if addr != "" {
			c.addr = addr
		}
	}
}

// WithMaxClients sets how many connections are served at once (default
// DefaultMaxClients, 10,000). A connection over the limit gets one error
// response line and is closed; connected clients are not disturbed. A value
// of zero or less keeps the default.
func WithMaxClients(n int) Option {
	return func(c *serverConfig) {
		if n > 0 {
			c.maxClients = n
		}
	}
}

// WithMaxLineBytes sets the longest request line accepted, in bytes, not
// counting the "\n" that ends it (default DefaultMaxLineBytes, 1 MiB). A
// longer line gets one error response, the rest of it is skipped, and the
// connection carries on with the next line. The server never buffers more
// than this for one line. A value of zero or less keeps the default.
func WithMaxLineBytes(n int) Option {
	return func(c *serverConfig) {
		if n > 0 {
			c.maxLineBytes = n
		}
	}
}

// WithIdleTimeout closes a connection that has not completed a request
// line within d of the server waiting for one (a client that sends nothing,
// or one byte now and then, is disconnected). Zero or less turns the idle
// timeout off, the default.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *serverConfig) {
		if d < 0 {
			d = 0
		}
		c.idleTimeout = d
	}
}

// WithWriteTimeout bounds how long writing one batch of responses to a
// client may take (default DefaultWriteTimeout, 10s). A client that does
// not read its responses fills the socket buffers, the write times out and
// the client is disconnected, so the server's memory stays bounded. A value
// of zero or less keeps the default: the timeout cannot be turned off.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *serverConfig) {
		if d > 0 {
			c.writeTimeout = d
		}
	}
}

// WithShutdownTimeout bounds the graceful shutdown that Serve and
// ListenAndServe run when their context is cancelled (default
// DefaultShutdownTimeout, 10s); connections still busy after it are closed
// forcibly. Shutdown itself uses the context it is given instead. A value
// of zero or less keeps the default.
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *serverConfig) {
		if d > 0 {
			c.shutdownTimeout = d
		}
	}
}

// WithMaxTxnDepth sets how many nested transaction levels (START inside
// START) a connection may open (default DefaultMaxTxnDepth, 100); the START
// over the limit gets an error response. A value of zero or less keeps the
// default; values above the engine's MaxTxnDepth are lowered to it.
func WithMaxTxnDepth(n int) Option {
	return func(c *serverConfig) {
		if n > 0 {
			c.maxTxnDepth = min(n, MaxTxnDepth)
		}
	}
}

// WithEventLoops chooses how connections are served. With n > 0, n epoll
// event loops (Linux only) each serve many connections, in the style of
// Redis: each loop is one goroutine with its own epoll instance and one
// shared read buffer, and a connection costs no goroutine and keeps
// private memory only for a partial request line or unsent output. With
// n == 0, each connection is served by its own goroutine with blocking
// I/O, the portable backend. A negative n keeps the default: on Linux,
// runtime.GOMAXPROCS(0)-1 loops, and at least one (GOMAXPROCS as it is
// when the server starts its loops): the P left over runs the rest of
// the program and the Go runtime, which then never has to take a loop's
// P away while the loop waits for events; elsewhere the option is
// ignored and connections always get a goroutine each.
//
// A loop that has just served requests polls for more for up to 50 µs
// before it sleeps in epoll_wait, and stops doing so when that finds
// nothing, so an idle server uses no CPU.
//
// The two backends behave the same on the wire. Connections from a
// listener that does not return *net.TCPConn are always served by
// goroutines.
func WithEventLoops(n int) Option {
	return func(c *serverConfig) {
		if n >= 0 {
			c.eventLoops = n
		} else {
			c.eventLoops = eventLoopsAuto
		}
	}
}

// WithIOUring chooses whether the event loops (see WithEventLoops) batch
// their sockets' reads and writes with Linux's io_uring: on (the
// default), a loop reads from all the connections that have input, and at
// the end of its round writes to all those that have responses, in one
// system call each (io_uring_enter), where it would otherwise make one
// read(2) and one write(2) per connection. Where the kernel does not
// allow io_uring (before 5.5, or kernel.io_uring_disabled, or a seccomp
// filter), the loops make the plain calls whatever this says. The wire
// behaviour is the same either way.
func WithIOUring(on bool) Option {
	return func(c *serverConfig) { c.ioUring = on }
}

// defaultClientMemory is the default of WithMaxClientMemory: 1 GiB, or a
// quarter of the memory available to the process (the machine's, or its
// cgroup's limit) if that is less.
func defaultClientMemory() int64 {
	if t := sysmem.Total(); t > 0 && t/4 < maxDefaultClientMemory {
		return int64(t / 4)
	}
	return maxDefaultClientMemory
}

// WithMaxClientMemory sets the budget, in bytes, for the memory the server
// holds on behalf of all its clients together: the input buffers (partial
// request lines, requests read and not yet executed) and the output
// buffers (responses not yet sent) of every connection. The default is
// 1 GiB, or a quarter of the machine's memory (or of the process's cgroup
// limit) if that is less.
//
// When the clients hold more than the budget, the server disconnects the
// clients holding the most, biggest first, until they hold less (as Redis
// 7's maxmemory-clients does): their open transactions roll back, and
// they get no response line. Clients holding little are never the ones
// disconnected. Memory of connections that are gone is returned to the
// operating system within seconds. A value of zero or less keeps the
// default.
func WithMaxClientMemory(bytes int64) Option {
	return func(c *serverConfig) {
		if bytes > 0 {
			c.maxClientMemory = bytes
		}
	}
}

// WithMaxClientOutput bounds the responses the server holds for one client
// that it has not yet sent (default DefaultMaxClientOutput, 8 MiB); a
// client whose unsent responses exceed it is disconnected. Independently,
// an event loop stops executing a client's requests while 256 KiB of its
// responses are unsent (the goroutine backend blocks in its write), and a
// client whose responses make no progress for the write timeout is
// disconnected, so a client that does not read usually holds far less.
// The bound matters for single responses larger than it: raise it along
// with WithMaxLineBytes. A value of zero or less keeps the default.
func WithMaxClientOutput(bytes int) Option {
	return func(c *serverConfig) {
		if bytes > 0 {
			c.maxClientOutput = bytes
		}
	}
}

// WithLogger sets the logger. The server logs the listen address at Info,
// connects, disconnects and rejected connections at Debug, and unexpected
// errors at Warn or Error; it never logs per request. The default, and a
// nil logger, discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *serverConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithPassword makes every connection authenticate with "AUTH <password>"
// before it may run anything but AUTH, PING, HELP and EXIT (or QUIT);
// other requests get an Error whose mesg starts with "authentication
// required". The server keeps only a SHA-256 hash of the password and
// compares hashes in constant time; it never logs it. An empty password
// (the default) requires no authentication.
func WithPassword(password string) Option {
	return func(c *serverConfig) { c.password = password }
}

// WithProtectedMode turns protected mode on or off (on by default). In
// protected mode a server with no password (see WithPassword) serves only
// clients on the same host (loopback addresses, Unix sockets): any other
// client gets one Error line whose mesg starts with "protected mode" and
// is closed. It guards against a server exposed to a network by mistake.
func WithProtectedMode(on bool) Option {
	return func(c *serverConfig) { c.protectedMode = on }
}

// WithTLSConfig makes Serve and ListenAndServe speak TLS only: the
// listener is wrapped with tls.NewListener(ln, cfg). Set cfg.ClientAuth to
// tls.RequireAndVerifyClientCert and cfg.ClientCAs for client certificates
// (mTLS). TLS connections are not *net.TCPConn, so they are served by the
// goroutine backend (see WithEventLoops). A client that does not complete
// the handshake (a plain-text client, a client certificate that does not
// verify) is closed; the server keeps serving. A nil cfg (the default)
// serves plain TCP.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *serverConfig) { c.tlsConfig = cfg }
}
