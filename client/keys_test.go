package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kvd-dev/kvstore"
)

// Integration tests of Keys, KeysPage and AllKeys against a real
// kvstore.Server on loopback, on both backends.

// putAll stores every key (value "v") through c, from a few goroutines so
// that the requests are pipelined.
func putAll(t *testing.T, c *Client, keys []string) {
	t.Helper()
	ctx := testCtx(t)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys); i += workers {
				if err := c.Put(ctx, keys[i], "v"); err != nil {
					errs <- fmt.Errorf("Put(%q): %w", keys[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// withPrefix returns the keys that start with prefix, in byte order.
func withPrefix(keys []string, prefix string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// checkListing returns an error unless got is exactly want (sorted): every
// key once, in byte order, nothing else.
func checkListing(got, want []string) error {
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			return fmt.Errorf("key %d (%s) does not sort after key %d (%s): repeated or out of order", i, short(got[i]), i-1, short(got[i-1]))
		}
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return fmt.Errorf("%d keys listed, want %d: missing %s first", len(got), len(want), short(want[i]))
		case i >= len(want):
			return fmt.Errorf("%d keys listed, want %d: extra %s first", len(got), len(want), short(got[i]))
		case got[i] != want[i]:
			return fmt.Errorf("key %d is %s, want %s", i, short(got[i]), short(want[i]))
		}
	}
	return nil
}

// short quotes k, shortened for a message.
func short(k string) string {
	if len(k) > 24 {
		return strconv.Quote(k[:24]) + "..."
	}
	return strconv.Quote(k)
}

// TestCheckListingCatchesBrokenPaging: the listing checker rejects what a
// broken pager would produce from a real listing: a repeated key (resuming
// at the page's last key but one), a skipped one, keys out of order, a key
// outside the prefix.
func TestCheckListingCatchesBrokenPaging(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := srv.dial(t)
	want, outside := pagingKeys(50)
	putAll(t, c, append(slices.Clone(want), outside...))
	brokenPagers := map[string]func(keys []string) string{
		"resumes at the last key but one": func(keys []string) string { return keys[len(keys)-2] },
		"resumes one key too far": func(keys []string) string {
			return want[slices.Index(want, keys[len(keys)-1])+1]
		},
	}
	for name, resume := range brokenPagers {
		var got []string
		after := ""
		for range 20 {
			keys, more, err := c.KeysPage(ctx, "p:", after, 10)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, keys...)
			if !more {
				break
			}
			after = resume(keys)
		}
		if err := checkListing(got, want); err == nil {
			t.Errorf("checkListing accepted the listing of a pager that %s", name)
		}
	}
	swapped := slices.Clone(want)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	for name, got := range map[string][]string{
		"swapped": swapped,
		"missing": want[1:],
		"extra":   append(slices.Clone(want), "p;"),
		"outside": append([]string{"p"}, want...),
	} {
		if err := checkListing(got, want); err == nil {
			t.Errorf("checkListing accepted a listing with a key %s", name)
		}
	}
	if err := checkListing(flatten(pageThrough(ctx, t, c.KeysPage, "p:", 10)), want); err != nil {
		t.Errorf("the correct pager: %v", err)
	}
}

// page is one answer of KeysPage.
type page struct {
	keys []string
	more bool
}

// pageThrough lists prefix with KeysPage, limit keys at a time, following
// "more" and the last key of each page, and returns the pages.
func pageThrough(ctx context.Context, t *testing.T, list func(ctx context.Context, prefix, after string, limit int) ([]string, bool, error), prefix string, limit int) []page {
	t.Helper()
	var pages []page
	after := ""
	for {
		keys, more, err := list(ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("KeysPage(%q, %q, %d) after %d pages: %v", prefix, after, limit, len(pages), err)
		}
		pages = append(pages, page{keys, more})
		if !more {
			return pages
		}
		if len(pages) > 100000 {
			t.Fatal("paging does not end")
		}
		after = keys[len(keys)-1]
	}
}

func flatten(pages []page) []string {
	var all []string
	for _, p := range pages {
		all = append(all, p.keys...)
	}
	return all
}

// TestKeysPrefixes: Keys answers exactly the keys with the prefix, in byte
// order, for prefixes holding the pattern's '*', JSON escapes and UTF-8.
func TestKeysPrefixes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		keys := []string{
			"a", "a*", "a**", "a*b", "a*b*", "a*b*c", "a*c", "ab", "a\"q", `a\b`, "a/", "a~",
			"b", "user:1", "user:10", "user:2", "user:", "users", "é", "éa", "ключ", "z\u00ff", "~",
		}
		putAll(t, c, keys)
		prefixes := []string{"", "a", "a*", "a**", "a*b", "a*b*", "a*b*c", "a\"", `a\`, "ab", "user:", "user:1", "é", "ключ", "nothing", "~", "a*b*c*"}
		for _, p := range prefixes {
			got, err := c.Keys(ctx, p)
			if err != nil {
				t.Fatalf("Keys(%q): %v", p, err)
			}
			if got == nil {
				t.Errorf("Keys(%q) = nil; want a non-nil slice", p)
			}
			if err := checkListing(got, withPrefix(keys, p)); err != nil {
				t.Errorf("Keys(%q) = %q: %v", p, got, err)
			}
		}
		// A deleted key is gone from the listing; a new one appears.
		if _, err := c.Delete(ctx, "a*b"); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, "a*ba", "v"); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Keys(ctx, "a*b"); err != nil || !slices.Equal(got, []string{"a*b*", "a*b*c", "a*ba"}) {
			t.Errorf("Keys(a*b) after a delete and a put = %q, %v", got, err)
		}
		for _, bad := range []string{"a b", "a\tb", "a\nb", "\xff"} {
			if _, err := c.Keys(ctx, bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Keys(%q) = %v; want ErrInvalidKey", bad, err)
			}
			if _, _, err := c.KeysPage(ctx, "a", bad, 10); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("KeysPage after %q = %v; want ErrInvalidKey", bad, err)
			}
		}
		if _, _, err := c.KeysPage(ctx, "a", "", 0); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("KeysPage limit 0 = %v; want ErrInvalidArgument", err)
		}
		_, _, err := c.KeysPage(ctx, "a", "", kvstore.MaxKeysLimit+1)
		wantServerError(t, "KeysPage over the server's LIMIT", err, "KEYS", ErrInvalidArgument)
	})
}

// pagingKeys returns n distinct keys under "p:" (one of them "p:" itself)
// whose byte order differs from their numeric order, and a few neighbours
// outside the prefix.
func pagingKeys(n int) (inside, outside []string) {
	rnd := rand.New(rand.NewPCG(11, 12))
	seen := map[string]bool{"p:": true}
	inside = []string{"p:"}
	for len(inside) < n {
		k := "p:" + strconv.FormatUint(rnd.Uint64N(1<<uint(4+rnd.IntN(40))), 36)
		if !seen[k] {
			seen[k] = true
			inside = append(inside, k)
		}
	}
	slices.Sort(inside)
	return inside, []string{"p", "p9", "p;", "p;0", "o~", "q"}
}

// TestKeysPaging: paging through a few thousand keys lists every key of
// the prefix exactly once, in byte order, whatever the page size; "more"
// is false on the last page and true on every other one.
func TestKeysPaging(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		const n = 3000
		want, outside := pagingKeys(n)
		putAll(t, c, append(slices.Clone(want), outside...))

		for _, limit := range []int{7, 256, 999, 1000, n, kvstore.MaxKeysLimit} {
			pages := pageThrough(ctx, t, c.KeysPage, "p:", limit)
			if err := checkListing(flatten(pages), want); err != nil {
				t.Fatalf("LIMIT %d: %v", limit, err)
			}
			// Every page but the last is full. The last holds the rest:
			// when n is a multiple of limit, the server cannot know that
			// a full page was the last without reading past it, so one
			// empty page with more == false ends the listing.
			wantPages := (n + limit - 1) / limit
			if n%limit == 0 {
				wantPages++
			}
			if len(pages) != wantPages {
				t.Fatalf("LIMIT %d: %d pages; want %d", limit, len(pages), wantPages)
			}
			for i, p := range pages[:len(pages)-1] {
				if len(p.keys) != limit || !p.more {
					t.Fatalf("LIMIT %d: page %d holds %d keys, more %v; want %d, true", limit, i, len(p.keys), p.more, limit)
				}
			}
			if last := pages[len(pages)-1]; last.more || len(last.keys) != n%limit {
				t.Fatalf("LIMIT %d: last page holds %d keys, more %v; want %d, false", limit, len(last.keys), last.more, n%limit)
			}
		}

		// AllKeys pages the same way; breaking out stops it.
		var all []string
		for k, err := range c.AllKeys(ctx, "p:", 100) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, k)
		}
		if err := checkListing(all, want); err != nil {
			t.Fatalf("AllKeys: %v", err)
		}
		var first []string
		for k, err := range c.AllKeys(ctx, "p:", 100) {
			if err != nil {
				t.Fatal(err)
			}
			first = append(first, k)
			if len(first) == 150 {
				break
			}
		}
		if !slices.Equal(first, want[:150]) {
			t.Fatalf("AllKeys broken out of after 150 keys listed %q...", first[:3])
		}

		// AFTER a key in the middle, before the prefix, and past its end.
		if keys, more, err := c.KeysPage(ctx, "p:", want[500], 10); err != nil || !slices.Equal(keys, want[501:511]) || !more {
			t.Errorf("KeysPage after %q = %q, %v, %v; want %q, true", want[500], keys, more, err, want[501:511])
		}
		if keys, _, err := c.KeysPage(ctx, "p:", "a", 3); err != nil || !slices.Equal(keys, want[:3]) {
			t.Errorf("KeysPage after a key before the prefix = %q, %v; want %q", keys, err, want[:3])
		}
		if keys, more, err := c.KeysPage(ctx, "p:", "p;", 3); err != nil || len(keys) != 0 || more {
			t.Errorf("KeysPage after the prefix's range = %q, %v, %v; want none, false", keys, more, err)
		}
		if keys, err := c.Keys(ctx, "p:zz"); err != nil || checkListing(keys, withPrefix(want, "p:zz")) != nil {
			t.Errorf("Keys(p:zz) = %q, %v", keys, err)
		}
	})
}

// TestKeysPagingUnderWrites: keys created and deleted while a listing is
// paged outside a transaction may or may not be listed, but every key
// that stays is listed exactly once, in order.
func TestKeysPagingUnderWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		want, _ := pagingKeys(2000)
		putAll(t, c, want)
		writer := srv.dial(t)
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			// Churn: keys that sort right after stable ones come and go.
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				k := want[(i*7919)%len(want)] + "-churn"
				var err error
				if i%2 == 0 {
					err = writer.Put(ctx, k, "v")
				} else {
					_, err = writer.Delete(ctx, want[((i-1)*7919)%len(want)]+"-churn")
				}
				if err != nil {
					done <- err
					return
				}
			}
		}()
		var got []string
		for k, err := range c.AllKeys(ctx, "p:", 37) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		var stable []string
		for i, k := range got {
			if i > 0 && k <= got[i-1] {
				t.Fatalf("%q listed after %q", k, got[i-1])
			}
			if !strings.HasSuffix(k, "-churn") {
				stable = append(stable, k)
			}
		}
		if err := checkListing(stable, want); err != nil {
			t.Fatal(err)
		}
	})
}

// TestKeysPageSizeCut: a page the server cuts at its size limit (1 MiB of
// keys) holds fewer keys than asked and says "more"; the unpaged form
// refuses the same listing with ErrTooManyKeys although it has fewer keys
// than the count bound.
func TestKeysPageSizeCut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		const n, pad = 900, 1500 // 900 keys, about 1.3 MiB
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("big:%04d:", i)+strings.Repeat("x", pad))
		}
		putAll(t, c, want)

		_, err := c.Keys(ctx, "big:")
		wantServerError(t, "unpaged Keys of 1.3 MiB of keys", err, "KEYS", ErrTooManyKeys)

		for _, limit := range []int{800, kvstore.MaxKeysLimit} {
			pages := pageThrough(ctx, t, c.KeysPage, "big:", limit)
			if err := checkListing(flatten(pages), want); err != nil {
				t.Fatalf("LIMIT %d: %v", limit, err)
			}
			first := pages[0]
			size := 0
			for _, k := range first.keys {
				size += len(k) + 3 // quotes and a comma
			}
			if len(first.keys) >= limit || len(first.keys) == 0 || !first.more || size > kvstore.MaxKeysBytes {
				t.Fatalf("LIMIT %d: first page holds %d keys (%d bytes), more %v; want a page cut at %d bytes, more true", limit, len(first.keys), size, first.more, kvstore.MaxKeysBytes)
			}
			if len(pages) != 2 || pages[1].more {
				t.Fatalf("LIMIT %d: %d pages, the last with more %v; want 2, false", limit, len(pages), pages[len(pages)-1].more)
			}
		}
		// Pages that fit are not cut.
		pages := pageThrough(ctx, t, c.KeysPage, "big:", 450)
		if len(pages) != 3 || len(pages[0].keys) != 450 || len(pages[1].keys) != 450 || len(pages[2].keys) != 0 {
			t.Fatalf("LIMIT 450: pages of %d keys", len(pages))
		}
	})
}

// TestKeysUnpagedBound: Keys lists up to kvstore.MaxUnpagedKeys keys at
// once; one more is ErrTooManyKeys, outside and inside a transaction,
// which carries on.
func TestKeysUnpagedBound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, srv *testServer) {
		ctx := testCtx(t)
		c := srv.dial(t)
		var keys []string
		for i := range kvstore.MaxUnpagedKeys {
			keys = append(keys, fmt.Sprintf("m:%05d", i))
		}
		putAll(t, c, keys)
		if got, err := c.Keys(ctx, "m:"); err != nil || checkListing(got, keys) != nil {
			t.Fatalf("Keys of exactly %d keys: %d keys, %v", len(keys), len(got), err)
		}
		if err := c.Put(ctx, "m:99999", "v"); err != nil {
			t.Fatal(err)
		}
		_, err := c.Keys(ctx, "m:")
		wantServerError(t, "Keys over the bound", err, "KEYS", ErrTooManyKeys)
		var se *ServerError
		if errors.As(err, &se) && !strings.Contains(se.Mesg, "LIMIT") {
			t.Errorf("the error does not tell the user to page: %q", se.Mesg)
		}
		if got, err := c.Keys(ctx, "m:001"); err != nil || len(got) != 100 {
			t.Errorf("Keys of a smaller prefix = %d keys, %v", len(got), err)
		}
		if pages := pageThrough(ctx, t, c.KeysPage, "m:", kvstore.MaxUnpagedKeys); len(pages) != 2 || len(pages[1].keys) != 1 {
			t.Errorf("paging the same prefix: %d pages", len(pages))
		}

		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Keys(ctx, "m:")
		wantServerError(t, "tx.Keys over the bound", err, "KEYS", ErrTooManyKeys)
		if _, err := tx.Delete(ctx, "m:99999"); err != nil {
			t.Fatal(err)
		}
		if got, err := tx.Keys(ctx, "m:"); err != nil || len(got) != kvstore.MaxUnpagedKeys {
			t.Fatalf("tx.Keys after deleting one key in the transaction = %d keys, %v", len(got), err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
