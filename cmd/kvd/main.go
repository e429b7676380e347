// Command kvd serves a kvstore.Store over TCP with the kvd line protocol
// (try nc localhost 4000; the protocol is docs/PROTOCOL.md). Without -dir
// the store is in memory only; with -dir DIR it keeps its data in DIR (a
// commit log synced as -fsync says, and snapshots) and recovers it on the
// next start. It stops gracefully on SIGINT or SIGTERM, and then syncs
// every acknowledged write.
//
// Usage:
//
//	kvd [-addr :4000] [-max-clients 10000] [-max-line 1048576] [-idle-timeout 0] [-event-loops -1] [-io-uring=true] [-maxmemory 0] [-maxmemory-clients 0] [-max-client-output 0] [-dir DIR [-fsync everysec] [-recover-truncate]] [-password-file FILE] [-protected-mode=true] [-tls-cert FILE -tls-key FILE [-tls-client-ca FILE]] [-metrics-addr HOST:PORT] [-log-level info] [-version]
//
// Flags are parsed and checked by parseConfig (config.go): an invalid
// value, an unknown flag or a stray argument stops kvd with status 2.
// With -dir and -fsync always, kvd runs with GOMAXPROCS one above its
// default, for the log writer (see reserveLogWriterP), unless the
// GOMAXPROCS environment variable is set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kvd-dev/kvstore"
)

func main() { os.Exit(run()) }

// run is kvd; it returns the exit status.
func run() int {
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(os.Stderr, "kvd:", errors.Unwrap(err))
		return 2
	case cfg.showVersion:
		fmt.Println("kvd", version)
		return 0
	}

	reserveLogWriterP(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.level}))
	storeOpts := []kvstore.StoreOption{kvstore.WithMaxMemory(int64(cfg.maxMemory)), kvstore.WithSync(cfg.syncMode),
		kvstore.WithRecoverTruncate(cfg.recoverTruncate), kvstore.WithAutoCompact(cfg.autoCompactMin()), kvstore.WithStoreLogger(logger)}
	var store *kvstore.Store
	if cfg.dir == "" {
		store = kvstore.New(storeOpts...)
	} else {
		start := time.Now()
		if store, err = kvstore.Open(cfg.dir, storeOpts...); err != nil {
			logger.Error("kvd cannot open its data directory", "err", err)
			return 1
		}
		logger.Info("kvd recovered its data", "dir", cfg.dir, "keys", store.Len(), "fsync", cfg.syncMode.String(), "took", time.Since(start).Round(time.Millisecond))
	}
	srv := kvstore.NewServer(store, kvstore.WithAddr(cfg.addr), kvstore.WithMaxClients(cfg.maxClients),
		kvstore.WithMaxLineBytes(cfg.maxLine), kvstore.WithIdleTimeout(cfg.idle), kvstore.WithEventLoops(cfg.loops), kvstore.WithIOUring(cfg.ioUring),
		kvstore.WithPassword(cfg.password), kvstore.WithProtectedMode(cfg.protectedMode), kvstore.WithTLSConfig(cfg.tlsConfig),
		kvstore.WithMaxClientMemory(int64(cfg.maxClientMemory)), kvstore.WithMaxClientOutput(int(min(cfg.maxClientOutput, math.MaxInt32))),
		kvstore.WithLogger(logger))
	var metricsDone <-chan struct{}
	if cfg.metricsAddr != "" {
		mctx, stopMetrics := context.WithCancel(ctx)
		defer stopMetrics()
		if _, metricsDone, err = serveMetrics(mctx, cfg.metricsAddr, srv.Stats, logger); err != nil {
			fmt.Fprintf(os.Stderr, "kvd: -metrics-addr %s: %v\n", cfg.metricsAddr, err)
			store.Close()
			return 1
		}
		defer func() { stopMetrics(); <-metricsDone }()
	}
	serveErr := srv.ListenAndServe(ctx)
	// The server has stopped: every acknowledged write is in the store.
	if err := store.Close(); err != nil {
		logger.Error("kvd could not sync its data on shutdown", "err", err)
		return 1
	}
	if errors.Is(serveErr, syscall.EADDRINUSE) {
		fmt.Fprintf(os.Stderr, "kvd: %s is already in use; is another kvd running? use -addr to pick another address\n", cfg.addr)
		return 1
	}
	if serveErr != nil {
		logger.Error("kvd stopped", "err", serveErr)
		return 1
	}
	return 0
}
