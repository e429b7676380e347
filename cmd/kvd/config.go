package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kvd-dev/kvstore"
)

// version is kvd's version, printed by -version; release builds set it
// with -ldflags "-X main.version=...".
var version = "devel"

// usageHead is the first lines of -h.
const usageHead = `kvd is an in-memory key-value datastore with serializable transactions, spoken to over TCP with one text line per request.

Example:
  kvd -addr 127.0.0.1:4000 &
  printf 'PUT a 1\nGET a\n' | nc -N localhost 4000

Flags:
`

// config is kvd's command line, parsed and checked.
type config struct {
	addr            string
	maxClients      int
	maxLine         int
	idle            time.Duration
	loops           int
	ioUring         bool
	maxMemory       byteSize
	maxClientMemory byteSize
	maxClientOutput byteSize
	dir             string
	fsync           string
	syncMode        kvstore.SyncMode
	recoverTruncate bool
	autoCompact     byteSize
	level           slog.Level
	passwordFile    string
	password        string
	protectedMode   bool
	tlsCert         string
	tlsKey          string
	tlsClientCA     string
	tlsConfig       *tls.Config
	showVersion     bool
	metricsAddr     string
}

// errUsage is returned (wrapped) for a command line kvd refuses: exit
// status 2.
var errUsage = errors.New("usage")

// check is one validation of the parsed flags. Teammates add theirs to
// checks: each returns an error saying what is wrong, or nil.
type check func(c *config) error

// checks are run in order after parsing; the first error stops kvd.
var checks = []check{
	func(c *config) error {
		if c.maxClients < 1 {
			return fmt.Errorf("-max-clients %d: want at least 1", c.maxClients)
		}
		return nil
	},
	func(c *config) error {
		if c.maxLine < 1 {
			return fmt.Errorf("-max-line %d: want at least 1 byte", c.maxLine)
		}
		return nil
	},
	func(c *config) error {
		if c.idle < 0 {
			return fmt.Errorf("-idle-timeout %s: want 0 (off) or more", c.idle)
		}
		return nil
	},
	func(c *config) error {
		if c.maxMemory < 0 {
			return fmt.Errorf("-maxmemory: want 0 (no limit) or more")
		}
		return nil
	},
	func(c *config) error {
		mode, ok := kvstore.ParseSyncMode(c.fsync)
		if !ok {
			return fmt.Errorf("-fsync %q: want always, everysec or no", c.fsync)
		}
		c.syncMode = mode
		return nil
	},
	func(c *config) (err error) {
		c.password, err = readPassword(c.passwordFile, os.Getenv("KVD_PASSWORD"))
		return err
	},
	func(c *config) (err error) {
		c.tlsConfig, err = loadTLS(c.tlsCert, c.tlsKey, c.tlsClientCA)
		return err
	},
}

// parseConfig parses kvd's arguments (without the program name). Help
// and errors go to stderr. It returns flag.ErrHelp for -h, and an error
// wrapping errUsage for anything kvd must refuse.
func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{autoCompact: kvstore.DefaultAutoCompactMin}
	fs := flag.NewFlagSet("kvd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.addr, "addr", kvstore.DefaultAddr, "TCP address to listen on")
	fs.IntVar(&c.maxClients, "max-clients", kvstore.DefaultMaxClients, "maximum number of connected clients")
	fs.IntVar(&c.maxLine, "max-line", kvstore.DefaultMaxLineBytes, "maximum request line length in bytes")
	fs.DurationVar(&c.idle, "idle-timeout", 0, "close connections idle this long (0 = never)")
	fs.IntVar(&c.loops, "event-loops", -1, "epoll event loops serving connections (Linux; -1 = GOMAXPROCS-1, at least 1; 0 = a goroutine per connection)")
	fs.BoolVar(&c.ioUring, "io-uring", true, "event loops batch their sockets' reads and writes with io_uring where the kernel allows it (false = one read and one write system call per connection)")
	fs.Var(&c.maxMemory, "maxmemory", "refuse writes once the store holds this much memory: bytes, or with a KiB, MiB or GiB suffix (0 = no limit)")
	fs.Var(&c.maxClientMemory, "maxmemory-clients", "budget for the input and output buffers of all clients together; past it the clients holding the most are disconnected: bytes, or with a KiB, MiB or GiB suffix (0 = the default: 1GiB or a quarter of the machine's memory, whichever is less)")
	fs.Var(&c.maxClientOutput, "max-client-output", "disconnect a client whose unsent responses exceed this: bytes, or with a KiB, MiB or GiB suffix (0 = the default, 8MiB)")
	fs.StringVar(&c.dir, "dir", "", "keep the data in this existing directory (commit log and snapshots); empty = in memory only")
	fs.StringVar(&c.fsync, "fsync", "everysec", "with -dir, when the log is synced: always (before each acknowledgement), everysec, or no")
	fs.BoolVar(&c.recoverTruncate, "recover-truncate", false, "with -dir, start from the valid prefix of a damaged log instead of refusing to start (the records after the damage are lost)")
	fs.Var(&c.autoCompact, "auto-compact", "with -dir, compact the log into a snapshot in the background once it is larger than this and than the last snapshot: bytes, or with a KiB, MiB or GiB suffix (0 = never by itself; COMPACT still works)")
	fs.TextVar(&c.level, "log-level", slog.LevelInfo, "log level: debug (adds client connects with their address), info, warn or error")
	fs.StringVar(&c.passwordFile, "password-file", "", "require AUTH with the password on this file's first line (or set KVD_PASSWORD)")
	fs.BoolVar(&c.protectedMode, "protected-mode", true, "with no password, serve only clients on this host (loopback)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "with -tls-cert, require client certificates signed by this PEM CA (mTLS)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics and Go's profiler at /debug/pprof/ on this HOST:PORT (empty = off)")
	fs.BoolVar(&c.showVersion, "version", false, "print kvd's version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err) // flag printed it and the usage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q (kvd takes only flags; see kvd -h)", errUsage, fs.Arg(0))
	}
	if c.showVersion {
		return c, nil
	}
	for _, chk := range checks {
		if err := chk(c); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	return c, nil
}

// readPassword returns the first line of file, or env when file is
// empty; "" means no password.
func readPassword(file, env string) (string, error) {
	if file == "" {
		return env, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("-password-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("-password-file %s: the first line is empty", file)
	}
	return line, nil
}

// loadTLS builds the TLS configuration of -tls-cert, -tls-key and
// -tls-client-ca; nil when TLS is off.
func loadTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && clientCA == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificate in it", clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// autoCompactMin is the kvstore.WithAutoCompact argument for
// -auto-compact: its size, or -1 (off) for 0.
func (c *config) autoCompactMin() int64 {
	if c.autoCompact == 0 {
		return -1
	}
	return int64(c.autoCompact)
}
