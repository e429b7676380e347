package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/kvd-dev/kvstore"
	"github.com/kvd-dev/kvstore/client"
)

// startServer serves a fresh store on a free loopback port and returns its
// address and a function that stops it. A real program dials an existing
// kvd instead (e.g. "localhost:4000").
func startServer(opts ...kvstore.Option) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kvstore.NewServer(kvstore.New(), opts...).Serve(ctx, ln) }()
	return ln.Addr().String(), func() { cancel(); <-done }
}

func Example() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.Put(ctx, "greeting", "hello, world"); err != nil {
		log.Fatal(err)
	}
	v, err := c.Get(ctx, "greeting")
	fmt.Println(v, err)

	_, err = c.Get(ctx, "nobody")
	fmt.Println(errors.Is(err, client.ErrNotFound), err)

	existed, err := c.Delete(ctx, "greeting")
	fmt.Println(existed, err)
	// Output:
	// hello, world <nil>
	// true kvd: GET: key not found: nobody
	// true <nil>
}

// Update runs a read-modify-write transaction and retries it when another
// client's commit conflicts with it.
func ExampleClient_Update() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	c.Put(ctx, "alice", "100")
	c.Put(ctx, "bob", "20")
	transfer := func(tx *client.Txn) error {
		a, err := tx.Get(ctx, "alice")
		if err != nil {
			return err
		}
		b, err := tx.Get(ctx, "bob")
		if err != nil {
			return err
		}
		na, _ := strconv.Atoi(a)
		nb, _ := strconv.Atoi(b)
		if na < 30 {
			return errors.New("insufficient funds")
		}
		if err := tx.Put(ctx, "alice", strconv.Itoa(na-30)); err != nil {
			return err
		}
		return tx.Put(ctx, "bob", strconv.Itoa(nb+30))
	}
	fmt.Println(c.Update(ctx, transfer))
	a, _ := c.Get(ctx, "alice")
	b, _ := c.Get(ctx, "bob")
	fmt.Println(a, b)
	// Output:
	// <nil>
	// 70 50
}

// A transaction with a nested level: the nested Rollback discards only
// the writes made since the nested Begin; a commit that conflicts reports
// ErrConflict.
func ExampleClient_Begin() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	tx, err := c.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tx.Put(ctx, "a", "1")
	tx.Begin(ctx) // nested level
	tx.Put(ctx, "a", "2")
	tx.Rollback(ctx) // back to a = 1
	v, _ := tx.Get(ctx, "a")
	fmt.Println("inside:", v, "depth", tx.Depth())
	fmt.Println("commit:", tx.Commit(ctx))

	// Two transactions read the same key; the second to commit conflicts.
	t1, _ := c.Begin(ctx)
	t2, _ := c.Begin(ctx)
	t1.Get(ctx, "a")
	t2.Get(ctx, "a")
	t1.Put(ctx, "a", "from t1")
	t2.Put(ctx, "a", "from t2")
	fmt.Println("t1:", t1.Commit(ctx))
	err = t2.Commit(ctx)
	fmt.Println("t2 conflicts:", errors.Is(err, client.ErrConflict))
	v, _ = c.Get(ctx, "a")
	fmt.Println("a =", v)
	// Output:
	// inside: 1 depth 1
	// commit: <nil>
	// t1: <nil>
	// t2 conflicts: true
	// a = from t1
}

// Keys and values that the line protocol cannot carry are refused before
// anything is sent.
func ExampleErrInvalidValue() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Put(ctx, "k", "two\nlines")
	fmt.Println(errors.Is(err, client.ErrInvalidValue))
	err = c.Put(ctx, "a key", "v")
	fmt.Println(errors.Is(err, client.ErrInvalidKey))
	// Output:
	// true
	// true
}

// A server with a password: the Client sends AUTH first on every
// connection it opens.
func ExampleWithPassword() {
	addr, stop := startServer(kvstore.WithPassword("s3cret"))
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, addr, client.WithPassword("s3cret"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.Put(ctx, "k", "v"))

	_, err = client.Dial(ctx, addr, client.WithPassword("guess"))
	fmt.Println(errors.Is(err, client.ErrInvalidPassword))
	// Output:
	// <nil>
	// true
}

// KeysPage lists a prefix a page at a time: pass the last key of a page as
// after to get the next one, until more is false. AllKeys does the same
// in a loop; Keys lists a small prefix with one request.
func ExampleClient_KeysPage() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, k := range []string{"user:eve", "user:ada", "group:ops", "user:cy", "user:bob", "user:dan"} {
		if err := c.Put(ctx, k, "1"); err != nil {
			log.Fatal(err)
		}
	}
	after := ""
	for {
		keys, more, err := c.KeysPage(ctx, "user:", after, 2)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(keys, more)
		if !more {
			break
		}
		after = keys[len(keys)-1]
	}

	var all []string
	for k, err := range c.AllKeys(ctx, "user:", 100) {
		if err != nil {
			log.Fatal(err)
		}
		all = append(all, k)
	}
	fmt.Println(all)

	keys, err := c.Keys(ctx, "group:")
	fmt.Println(keys, err)
	// Output:
	// [user:ada user:bob] true
	// [user:cy user:dan] true
	// [user:eve] false
	// [user:ada user:bob user:cy user:dan user:eve]
	// [group:ops] <nil>
}

// Expire gives a key a time to live, in whole seconds on the wire; TTL
// reports what is left (0 for a key without one); Persist removes it, and
// so does a Put of a new value.
func ExampleClient_Expire() {
	addr, stop := startServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	c.Put(ctx, "session:42", "alice")
	fmt.Println(c.Expire(ctx, "session:42", 30*time.Minute))
	fmt.Println(c.TTL(ctx, "session:42"))

	fmt.Println(c.Persist(ctx, "session:42"))
	fmt.Println(c.TTL(ctx, "session:42"))

	c.Expire(ctx, "session:42", time.Hour)
	c.Put(ctx, "session:42", "bob") // a new value has no time to live
	fmt.Println(c.TTL(ctx, "session:42"))

	err = c.Expire(ctx, "session:7", time.Minute)
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// <nil>
	// 30m0s <nil>
	// <nil>
	// 0s <nil>
	// 0s <nil>
	// true
}
