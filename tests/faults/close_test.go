package faults

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/harness"
	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// TestExitDeliversEveryResponse: a client pipelines many GETs of a large
// value, then EXIT, then more requests it does not care about, and reads
// its responses a little late. Every response before EXIT, and the Bye,
// must arrive: closing the connection must not throw away responses the
// server has already produced (closing a socket with unread input makes the
// kernel send a reset and discard queued output, unless the server shuts
// down its write side and drains the input first).
func TestExitDeliversEveryResponse(t *testing.T) {
	base := harness.Goroutines()
	srv := harness.Start(t)
	big := strings.Repeat("v", 64<<10)
	setup := dial(t, srv.Addr)
	if err := setup.Put("big", big); err != nil {
		t.Fatal(err)
	}
	setup.Close()

	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const gets = 200
	go func() {
		w := bufio.NewWriter(conn)
		for range gets {
			w.WriteString("GET big\n")
		}
		w.WriteString("EXIT\n")
		for range 100000 { // requests after EXIT, never executed
			w.WriteString("PING\n")
		}
		w.Flush()
	}()
	time.Sleep(300 * time.Millisecond) // read late: responses queue up
	cl := kvclient.New(conn)
	got := 0
	var last kvclient.Response
	var endErr error
	for {
		r, err := cl.Recv()
		if err != nil {
			endErr = err
			break
		}
		last = r
		time.Sleep(2 * time.Millisecond) // a slow reader: output queues up in the server's socket
		if r.Result != nil && len(*r.Result) == len(big) {
			got++
		}
	}
	if got != gets || last.Message() != "Bye" {
		t.Errorf("received %d of %d GET responses, last %v, then %v: responses the server produced were lost when it closed the connection",
			got, gets, last, endErr)
	}
	conn.Close()
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.CheckGoroutines(t, base)
}
