// Command kvd serves an in-memory kvstore.Store over TCP with the kvd line
// protocol (try nc localhost 4000). It stops gracefully on SIGINT or SIGTERM.
//
// Usage:
//
//	kvd [-addr :4000] [-max-clients 10000] [-max-line 1048576] [-idle-timeout 0] [-event-loops -1] [-maxmemory 0] [-log-level info]
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kvd-dev/kvstore"
)

func main() {
	addr := flag.String("addr", kvstore.DefaultAddr, "TCP address to listen on")
	maxClients := flag.Int("max-clients", kvstore.DefaultMaxClients, "maximum number of connected clients")
	maxLine := flag.Int("max-line", kvstore.DefaultMaxLineBytes, "maximum request line length in bytes")
	idle := flag.Duration("idle-timeout", 0, "close connections idle this long (0 = never)")
	loops := flag.Int("event-loops", -1, "epoll event loops serving connections (Linux; -1 = GOMAXPROCS, 0 = a goroutine per connection)")
	var maxMemory byteSize
	flag.Var(&maxMemory, "maxmemory", "refuse writes once the store holds this much memory: bytes, or with a KiB, MiB or GiB suffix (0 = no limit)")
	var level slog.Level
	flag.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv := kvstore.NewServer(kvstore.New(kvstore.WithMaxMemory(int64(maxMemory))), kvstore.WithAddr(*addr), kvstore.WithMaxClients(*maxClients),
		kvstore.WithMaxLineBytes(*maxLine), kvstore.WithIdleTimeout(*idle), kvstore.WithEventLoops(*loops), kvstore.WithLogger(logger))
	if err := srv.ListenAndServe(ctx); err != nil {
		logger.Error("kvd stopped", "err", err)
		os.Exit(1)
	}
}
