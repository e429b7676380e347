package client

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
)

// fakeServer is a SCRIPTED FAKE kvd, not the real server: it reads request
// lines and answers each with whatever its handler returns, speaking the
// wire format of docs/PROTOCOL.md. Tests use it only where the real Server
// cannot produce the situation under test (a response held back on
// purpose, garbage on the wire, a server that stops reading) and for
// commands whose server side has not landed yet.
type fakeServer struct {
	ln net.Listener
	// handle answers one request line (without "\n") of connection conn
	// (numbered from 0 in accept order) with one or more response lines,
	// each ending in "\n"; close says to close the connection after
	// writing them.
	handle func(conn int, line string) (resp string, close bool)
	// greet, if set, is written to every new connection before anything
	// is read; closeAfterGreet closes it then.
	greet           string
	closeAfterGreet bool

	mu    sync.Mutex
	lines []string // every request line received, in order
	conns []net.Conn
	wg    sync.WaitGroup
}

// startFake starts a fakeServer on 127.0.0.1:0; it stops when the test
// ends.
func startFake(t *testing.T, f *fakeServer) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

func (f *fakeServer) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		id := len(f.conns)
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serve(id, nc)
	}
}

func (f *fakeServer) serve(id int, nc net.Conn) {
	defer f.wg.Done()
	defer nc.Close()
	if f.greet != "" {
		nc.Write([]byte(f.greet))
		if f.closeAfterGreet {
			return
		}
	}
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
		resp, closeConn := f.handle(id, line)
		if _, err := nc.Write([]byte(resp)); err != nil || closeConn {
			return
		}
	}
}

// received returns the request lines received so far.
func (f *fakeServer) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// connCount returns how many connections were accepted.
func (f *fakeServer) connCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// closeConns closes every connection accepted so far.
func (f *fakeServer) closeConns() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, nc := range f.conns {
		nc.Close()
	}
}

func (f *fakeServer) stop() {
	f.ln.Close()
	f.closeConns()
	f.wg.Wait()
}

const okLine = "{\"status\":\"Ok\"}\n"

// okHandler answers PING with PONG and everything else with Ok.
func okHandler(_ int, line string) (string, bool) {
	if line == "PING" {
		return `{"status":"Ok","result":"PONG"}` + "\n", false
	}
	return okLine, false
}
