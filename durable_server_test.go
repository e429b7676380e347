package kvstore

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// serveStore serves store on loopback until the test ends.
func serveStore(t *testing.T, store *Store, opts ...Option) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, opts...)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

// TestServerSyncAlways: over both backends, every response that
// acknowledges or shows a commit is sent only once that commit is synced;
// after a failed fsync, no write is acknowledged.
func TestServerSyncAlways(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend Option) {
		fs := newMemFS()
		store := openMem(t, fs, WithSync(SyncAlways))
		defer store.Close()
		opts := []Option{}
		if backend != nil {
			opts = append(opts, backend)
		}
		addr := serveStore(t, store, opts...)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		do := func(req string) string {
			c.Write([]byte(req + "\n"))
			line, err := br.ReadString('\n')
			if err != nil {
				return "EOF"
			}
			// Whatever the response shows must be durable by now.
			if d, pub := store.dur.log.Durable(), store.oracle.committed.Load(); d < pub {
				t.Errorf("%s answered with commit %d published but only %d synced", req, pub, d)
			}
			return strings.TrimSpace(line)
		}
		for _, req := range []string{"PUT a 1", "GET a", "START", "PUT b 2", "DEL a", "COMMIT", "GET b", "DEL b"} {
			if r := do(req); !strings.Contains(r, `"Ok"`) {
				t.Fatalf("%s: %s", req, r)
			}
		}
		// Pipelined: one batch, one wait.
		c.Write([]byte(strings.Repeat("PUT p x\n", 50)))
		for range 50 {
			if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, `"Ok"`) {
				t.Fatalf("pipelined PUT: %q %v", line, err)
			}
		}
		fs.FailSyncs(true)
		if r := do("PUT c 3"); strings.Contains(r, `"Ok"`) {
			t.Fatalf("PUT with a failing fsync answered %s", r)
		}
		c2, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(10 * time.Second))
		c2.Write([]byte("PUT d 4\n"))
		if line, _ := bufio.NewReader(c2).ReadString('\n'); strings.Contains(line, `"Ok"`) {
			t.Fatalf("PUT after a failed fsync answered %s", line)
		}
	})
}
