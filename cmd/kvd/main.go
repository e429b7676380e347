// Command kvd serves a kvstore.Store over TCP with the kvd line protocol
// (try nc localhost 4000). Without -dir the store is in memory only; with
// -dir DIR it keeps its data in DIR (a commit log synced as -fsync says,
// and snapshots) and recovers it on the next start. It stops gracefully on
// SIGINT or SIGTERM, and then syncs every acknowledged write.
//
// Usage:
//
//	kvd [-addr :4000] [-max-clients 10000] [-max-line 1048576] [-idle-timeout 0] [-event-loops -1] [-maxmemory 0] [-dir DIR [-fsync everysec] [-recover-truncate]] [-log-level info]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
	srv := kvstore.NewServer(store, kvstore.WithAddr(*addr), kvstore.WithMaxClients(*maxClients),
		kvstore.WithMaxLineBytes(*maxLine), kvstore.WithIdleTimeout(*idle), kvstore.WithEventLoops(*loops), kvstore.WithLogger(logger))
	serveErr := srv.ListenAndServe(ctx)
	// The server has stopped: every acknowledged write is in the store.
	if err := store.Close(); err != nil {
		logger.Error("kvd could not sync its data on shutdown", "err", err)
		os.Exit(1)
	}
	if serveErr != nil {
		logger.Error("kvd stopped", "err", serveErr)
		os.Exit(1)
	}
}
