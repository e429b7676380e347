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

// exerciseDurableServer serves store (on backend, nil for the default) and
// sends over one connection a request of each kind, then a pipelined batch
// of 50 PUTs (one batch, one wait for the log), calling check after each
// response and after the batch; every response must be Ok. It returns the
// server's address and the connection's request function, which calls
// check too.
func exerciseDurableServer(t *testing.T, store *Store, backend Option, check func(what string)) (addr string, do func(req string) string) {
	t.Helper()
	opts := []Option{}
	if backend != nil {
		opts = append(opts, backend)
	}
	addr = serveStore(t, store, opts...)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	do = func(req string) string {
		c.Write([]byte(req + "\n"))
		line, err := br.ReadString('\n')
		if err != nil {
			return "EOF"
		}
		check(req)
		return strings.TrimSpace(line)
	}
	for _, req := range []string{"PUT a 1", "GET a", "START", "PUT b 2", "DEL a", "COMMIT", "GET b", "DEL b"} {
		if r := do(req); !strings.Contains(r, `"Ok"`) {
			t.Fatalf("%s: %s", req, r)
		}
	}
	c.Write([]byte(strings.Repeat("PUT p x\n", 50)))
	for range 50 {
		if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, `"Ok"`) {
			t.Fatalf("pipelined PUT: %q %v", line, err)
		}
	}
	check("pipelined PUTs")
	return addr, do
}

// TestServerSyncAlways: over both backends, every response that
// acknowledges or shows a commit is sent only once that commit is synced;
// after a failed fsync, no write is acknowledged.
func TestServerSyncAlways(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend Option) {
		fs := newMemFS()
		store := openMem(t, fs, WithSync(SyncAlways))
		defer store.Close()
		// Whatever a response shows must be durable by then.
		addr, do := exerciseDurableServer(t, store, backend, func(req string) {
			if d, pub := store.dur.log.Durable(), store.oracle.committed.Load(); d < pub {
				t.Errorf("%s answered with commit %d published but only %d synced", req, pub, d)
			}
		})
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

// TestServerWritesLogBeforeAnswering: under SyncEverySecond and
// SyncNever, on both backends, no response acknowledges or shows a commit
// before the log holding it is handed to the operating system (written,
// not necessarily synced), so a crash of kvd alone loses nothing it
// acknowledged; the library's Put, Delete and Commit return only then
// too. After a failed write, writes are refused and reads still answer.
func TestServerWritesLogBeforeAnswering(t *testing.T) {
	for _, mode := range []SyncMode{SyncEverySecond, SyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			eachBackend(t, func(t *testing.T, backend Option) {
				fs := newMemFS()
				store := openMem(t, fs, WithSync(mode))
				defer store.Close()
				written := func(what string) {
					t.Helper()
					if w, pub := store.dur.log.Written(), store.oracle.committed.Load(); w < pub {
						t.Errorf("%s returned with commit %d published but only %d written", what, pub, w)
					}
				}
				store.Put("lib", "1")
				written("Put")
				store.Delete("lib")
				written("Delete")
				store.Update(func(tx *Txn) error { return tx.Put("lib", "2") })
				written("Commit")

				addr, _ := exerciseDurableServer(t, store, backend, written)

				fs.FailAfter(0)
				c2, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c2.Close()
				c2.SetDeadline(time.Now().Add(10 * time.Second))
				br2 := bufio.NewReader(c2)
				c2.Write([]byte("PUT c 3\n"))
				if line, _ := br2.ReadString('\n'); strings.Contains(line, `"Ok"`) {
					t.Fatalf("PUT with a failing write answered %s", line)
				}
				c3, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c3.Close()
				c3.SetDeadline(time.Now().Add(10 * time.Second))
				c3.Write([]byte("GET p\nPUT d 4\n"))
				br3 := bufio.NewReader(c3)
				if line, _ := br3.ReadString('\n'); !strings.Contains(line, `"Ok"`) {
					t.Fatalf("GET after a failed write answered %q", line)
				}
				if line, _ := br3.ReadString('\n'); strings.Contains(line, `"Ok"`) || !strings.Contains(line, "not durable") {
					t.Fatalf("PUT after a failed write answered %q", line)
				}
			})
		})
	}
}
