package client

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestSingleKeyCommands(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		values := map[string]string{
			"a":            "1",
			"empty":        "",
			"json":         `{"first_name": "George", "role": "President"}`,
			"html":         "<a href=\"x\">&amp;</a>",
			"inner-spaces": "a  b\tc  ",
			"unicode-ключ": "значение ☃ \u2028 \u0001 \r in the middle",
			"backslash":    `C:\dir\file "quoted"`,
		}
		for k, v := range values {
			if err := c.Put(ctx, k, v); err != nil {
				t.Fatalf("Put(%q, %q): %v", k, v, err)
			}
		}
		for k, v := range values {
			got, err := c.Get(ctx, k)
			if err != nil || got != v {
				t.Errorf("Get(%q) = %q, %v; want %q", k, got, err, v)
			}
			if sv, ok := srv.store.Get(k); !ok || sv != v {
				t.Errorf("store holds %q = %q, %v; want %q", k, sv, ok, v)
			}
		}
		_, err := c.Get(ctx, "missing")
		var se *ServerError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.Cmd != "GET" || !strings.HasPrefix(se.Mesg, "key not found") {
			t.Errorf("Get(missing) error = %v; want a *ServerError matching ErrNotFound", err)
		}
		if existed, err := c.Delete(ctx, "a"); !existed || err != nil {
			t.Errorf("Delete(a) = %v, %v; want true, nil", existed, err)
		}
		if existed, err := c.Delete(ctx, "a"); existed || err != nil {
			t.Errorf("second Delete(a) = %v, %v; want false, nil", existed, err)
		}
		if _, err := c.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete: %v; want ErrNotFound", err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

// TestUnsendableArguments: keys and values the protocol cannot carry are
// refused before anything is sent, and the connection keeps working.
func TestUnsendableArguments(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := srv.dial(t, WithPoolSize(1))
	badKeys := []string{"", "a b", "a\tb", "a\nb", "a\rb", "a\x00b", "a\x7fb", "a\u00a0b", "a\u2028b", "\xff", "a\u0085b"}
	for _, k := range badKeys {
		if err := c.Put(ctx, k, "v"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q): %v; want ErrInvalidKey", k, err)
		}
		if _, err := c.Get(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Get(%q): %v; want ErrInvalidKey", k, err)
		}
		if _, err := c.Delete(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q): %v; want ErrInvalidKey", k, err)
		}
	}
	badValues := []string{"a\nb", "\n", " leading", "\tleading", "trailing\r", "\xff\xfe", "ok\nPUT evil 1"}
	for _, v := range badValues {
		if err := c.Put(ctx, "k", v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("Put(k, %q): %v; want ErrInvalidValue", v, err)
		}
	}
	if _, ok := srv.store.Get("k"); ok {
		t.Errorf("a refused Put reached the store")
	}
	if _, ok := srv.store.Get("evil"); ok {
		t.Errorf("a value with a newline injected a request")
	}
	// The one connection is still in step.
	if err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k"); v != "v" || err != nil {
		t.Fatalf("Get(k) = %q, %v", v, err)
	}
}

// TestConcurrentClients: many goroutines share one Client; each works on
// its own keys and must read back exactly its own writes, so that a
// response handed to the wrong caller shows up as a wrong value.
func TestConcurrentClients(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t, WithPoolSize(3))
		const goroutines, ops = 32, 200
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ops {
					key := fmt.Sprintf("g%d:k%d", g, i%10)
					val := fmt.Sprintf("g%d:v%d", g, i)
					if err := c.Put(ctx, key, val); err != nil {
						errs <- fmt.Errorf("Put: %w", err)
						return
					}
					got, err := c.Get(ctx, key)
					if err != nil || got != val {
						errs <- fmt.Errorf("Get(%s) = %q, %v; want %q", key, got, err, val)
						return
					}
					if i%7 == 0 {
						if _, err := c.Get(ctx, fmt.Sprintf("g%d:none", g)); !errors.Is(err, ErrNotFound) {
							errs <- fmt.Errorf("Get(missing) = %v", err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
