// Command kvd serves a kvstore.Store over TCP with the kvd line protocol
// (try nc localhost 4000). Without -dir the store is in memory only; with
// -dir DIR it keeps its data in DIR (a commit log synced as -fsync says,
// and snapshots) and recovers it on the next start. It stops gracefully on
// SIGINT or SIGTERM, and then syncs every acknowledged write.
//
// Usage:
//
//	kvd [-addr :4000] [-password-file FILE] [-protected-mode=true] [-tls-cert FILE -tls-key FILE [-tls-client-ca FILE]] [-max-clients 10000] [-max-line 1048576] [-idle-timeout 0] [-event-loops -1] [-maxmemory 0] [-dir DIR [-fsync everysec] [-recover-truncate]] [-log-level info]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kvd-dev/kvstore"
)

func main() {
	addr := flag.String("addr", kvstore.DefaultAddr, "TCP address to listen on")
	maxClients := flag.Int("max-clients", kvstore.DefaultMaxClients, "maximum number of connected clients")
	maxLine := flag.Int("max-line", kvstore.DefaultMaxLineBytes, "maximum request line length in bytes")
	idle := flag.Duration("idle-timeout", 0, "close connections idle this long (0 = never)")
	loops := flag.Int("event-loops", -1, "epoll event loops serving connections (Linux; -1 = GOMAXPROCS-1, at least 1; 0 = a goroutine per connection)")
	var maxMemory byteSize
	flag.Var(&maxMemory, "maxmemory", "refuse writes once the store holds this much memory: bytes, or with a KiB, MiB or GiB suffix (0 = no limit)")
	dir := flag.String("dir", "", "keep the data in this existing directory (commit log and snapshots); empty = in memory only")
	fsync := flag.String("fsync", "everysec", "with -dir, when the log is synced: always (before each acknowledgement), everysec, or no")
	recoverTruncate := flag.Bool("recover-truncate", false, "with -dir, start from the valid prefix of a damaged log instead of refusing to start (the records after the damage are lost)")
	passwordFile := flag.String("password-file", "", "require AUTH with the password on this file's first line (or set KVD_PASSWORD)")
	protected := flag.Bool("protected-mode", true, "with no password, serve only clients on this host (loopback)")
	tlsCert := flag.String("tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key)")
	tlsKey := flag.String("tls-key", "", "PEM private key of -tls-cert")
	tlsClientCA := flag.String("tls-client-ca", "", "with -tls-cert, require client certificates signed by this PEM CA (mTLS)")
	var level slog.Level
	flag.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	mode, ok := kvstore.ParseSyncMode(*fsync)
	if !ok {
		fmt.Fprintf(os.Stderr, "kvd: -fsync %q: want always, everysec or no\n", *fsync)
		os.Exit(2)
	}
	storeOpts := []kvstore.StoreOption{kvstore.WithMaxMemory(int64(maxMemory)), kvstore.WithSync(mode),
		kvstore.WithRecoverTruncate(*recoverTruncate), kvstore.WithStoreLogger(logger)}
	var store *kvstore.Store
	if *dir == "" {
		store = kvstore.New(storeOpts...)
	} else {
		var err error
		start := time.Now()
		if store, err = kvstore.Open(*dir, storeOpts...); err != nil {
			logger.Error("kvd cannot open its data directory", "err", err)
			os.Exit(1)
		}
		logger.Info("kvd recovered its data", "dir", *dir, "keys", store.Len(), "fsync", mode.String(), "took", time.Since(start).Round(time.Millisecond))
	}
	password, err := readPassword(*passwordFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvd:", err)
		os.Exit(2)
	}
	tlsConfig, err := loadTLS(*tlsCert, *tlsKey, *tlsClientCA)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvd:", err)
		os.Exit(2)
	}
	srv := kvstore.NewServer(store, kvstore.WithPassword(password), kvstore.WithProtectedMode(*protected), kvstore.WithTLSConfig(tlsConfig), kvstore.WithAddr(*addr), kvstore.WithMaxClients(*maxClients),
		kvstore.WithMaxLineBytes(*maxLine), kvstore.WithIdleTimeout(*idle), kvstore.WithEventLoops(*loops), kvstore.WithLogger(logger))
	serveErr := srv.ListenAndServe(ctx)
	// The server has stopped: every acknowledged write is in the store.
	if err := store.Close(); err != nil {
		logger.Error("kvd could not sync its data on shutdown", "err", err)
		os.Exit(1)
	}
	if errors.Is(serveErr, syscall.EADDRINUSE) {
		fmt.Fprintf(os.Stderr, "kvd: %s is already in use; is another kvd running? use -addr to pick another address\n", *addr)
		os.Exit(1)
	}
	if serveErr != nil {
		logger.Error("kvd stopped", "err", serveErr)
		os.Exit(1)
	}
}

// readPassword returns the first line of file, or KVD_PASSWORD when file
// is empty; "" means no password.
func readPassword(file string) (string, error) {
	if file == "" {
		return os.Getenv("KVD_PASSWORD"), nil
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
