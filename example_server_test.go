package kvstore_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/kvd-dev/kvstore"
)

// Embed the server in a program: configure it with options, serve it on a
// listener, talk to it over TCP, and shut it down by cancelling the context.
func ExampleNewServer() {
	store := kvstore.New()
	srv := kvstore.NewServer(store,
		kvstore.WithMaxClients(100),
		kvstore.WithMaxLineBytes(64<<10),
		kvstore.WithIdleTimeout(5*time.Minute),
		kvstore.WithMaxTxnDepth(10),
		kvstore.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)

	// ListenAndServe(ctx) listens on WithAddr (":4000" by default); here a
	// listener on a free loopback port is passed to Serve instead.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "PUT greeting hello, world\nSTART\nPUT greeting bye\nGET greeting\nROLLBACK\nGET greeting\nEXIT\n")
	sc := bufio.NewScanner(conn)
	for sc.Scan() { // until the server closes the connection after EXIT
		fmt.Println(sc.Text())
	}

	cancel() // graceful shutdown
	fmt.Println("Serve returned:", <-served)
	v, _ := store.Get("greeting")
	fmt.Println("greeting =", v)
	// Output:
	// {"status":"Ok"}
	// {"status":"Ok"}
	// {"status":"Ok"}
	// {"status":"Ok","result":"bye"}
	// {"status":"Ok"}
	// {"status":"Ok","result":"hello, world"}
	// {"status":"Ok","mesg":"Bye"}
	// Serve returned: <nil>
	// greeting = hello, world
}

// Parse request lines with the public protocol layer, execute them with a
// Session, and encode responses: the pieces any front end reuses.
func ExampleParseRequest() {
	req, err := kvstore.ParseRequest([]byte("put  user:1   {\"name\": \"Ada\"}  \r\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%v key=%q value=%q\n", req.Cmd, req.Key, req.Value)

	_, err = kvstore.ParseRequest([]byte("GET a b"))
	fmt.Println(err)

	sess := kvstore.NewSession(kvstore.New(), 0)
	defer sess.Close()
	out, _ := sess.Execute(nil, req)
	out, _ = sess.ExecuteLine(out, []byte("GET user:1"))
	out = kvstore.AppendResponse(out, kvstore.Response{Status: kvstore.StatusError, Mesg: "a <custom> error"})
	fmt.Print(string(out))
	// Output:
	// PUT key="user:1" value="{\"name\": \"Ada\"}  "
	// wrong number of arguments for GET: usage: GET <key>
	// {"status":"Ok"}
	// {"status":"Ok","result":"{\"name\": \"Ada\"}  "}
	// {"status":"Error","mesg":"a <custom> error"}
}

// ExampleWithMaxClientMemory bounds what the server holds for its clients:
// 64 MiB for the buffers of all connections together (past it, the
// clients holding the most are disconnected), and 4 MiB of unsent
// responses for any one client.
func ExampleWithMaxClientMemory() {
	srv := kvstore.NewServer(kvstore.New(),
		kvstore.WithMaxClientMemory(64<<20),
		kvstore.WithMaxClientOutput(4<<20))
	fmt.Println("held for clients:", srv.ClientMemory())
	// Output: held for clients: 0
}
