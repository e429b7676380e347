// Package proxy is a deliberately broken, test-only TCP front end for kvd.
// It sits between clients and a real server and breaks one promise of the
// contract, so that each checker in this module can be shown to reject a
// store that misbehaves.
//
// The proxy handles one request at a time per connection (read a line,
// forward it, read the one response, answer), so pipelining clients keep
// working, only slower.
package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Mode selects how the proxy breaks the contract.
type Mode int

const (
	// Passthrough forwards every request unchanged (a control).
	Passthrough Mode = iota
	// StaleReads answers some GETs from a cache of earlier GET responses
	// (shared by all connections) instead of asking the server: a stale
	// read, inside transactions too.
	StaleReads
	// SplitTxn answers START, COMMIT and ROLLBACK itself and forwards the
	// commands in between as separate non-transactional commands: no
	// snapshot, no atomicity, no conflict check, no rollback.
	SplitTxn
	// IgnoreConflicts keeps transactions, but when the outermost COMMIT
	// fails with a conflict it replays the transaction's writes as plain
	// commands and reports success: the conflict check is dropped.
	IgnoreConflicts
	// UnvalidatedListing keeps transactions, but answers a KEYS inside one
	// from a second connection, outside any transaction: the listing is
	// not part of the transaction's reads, as if range reads were not
	// validated at commit (phantoms go undetected).
	UnvalidatedListing
	// IgnoreExpire turns EXPIRE <key> <seconds> into PERSIST <key>: the
	// answer is right (Ok or key not found) but the key never expires.
	IgnoreExpire
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Passthrough:
		return "passthrough"
	case StaleReads:
		return "stale-reads"
	case SplitTxn:
		return "split-txn"
	case IgnoreConflicts:
		return "ignore-conflicts"
	case UnvalidatedListing:
		return "unvalidated-listing"
	case IgnoreExpire:
		return "ignore-expire"
	}
	return "unknown"
}

// StaleEvery makes StaleReads serve every n-th GET of a key from the cache.
const StaleEvery = 2

// Proxy is a running broken front end.
type Proxy struct {
	mode    Mode
	backend string
	ln      net.Listener

	mu     sync.Mutex
	cache  map[string]string // key -> last GET response line from the server
	gets   map[string]int    // key -> GETs seen
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on a loopback port and forwards to backend.
func Start(backend string, mode Mode) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		mode:    mode,
		backend: backend,
		ln:      ln,
		cache:   map[string]string{},
		gets:    map[string]int{},
		conns:   map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients should dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// session is the proxy's view of one client connection.
type session struct {
	p      *Proxy
	down   net.Conn
	downR  *bufio.Reader
	depth  int      // open transactions as the client sees them
	writes []string // IgnoreConflicts: PUT/DEL requests of the open transaction
	side   net.Conn // UnvalidatedListing: the connection KEYS goes to
	sideR  *bufio.Reader
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	down, err := net.DialTimeout("tcp", p.backend, 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(down) {
		return
	}
	defer p.untrack(down)
	s := &session{p: p, down: down, downR: bufio.NewReader(down)}
	if p.mode == UnvalidatedListing {
		side, err := net.DialTimeout("tcp", p.backend, 10*time.Second)
		if err != nil || !p.track(side) {
			return
		}
		defer p.untrack(side)
		s.side, s.sideR = side, bufio.NewReader(side)
	}
	in := bufio.NewReader(client)
	out := bufio.NewWriter(client)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return
		}
		resp, quit, err := s.handle(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
		if err != nil {
			return
		}
		if _, err := out.WriteString(resp); err != nil {
			return
		}
		if in.Buffered() == 0 || quit {
			if err := out.Flush(); err != nil {
				return
			}
		}
		if quit {
			return
		}
	}
}

const okLine = "{\"status\":\"Ok\"}\n"

// forward sends one request to the server and returns its response line.
func (s *session) forward(req string) (string, error) {
	if _, err := io.WriteString(s.down, req+"\n"); err != nil {
		return "", err
	}
	resp, err := s.downR.ReadString('\n')
	if err != nil {
		return "", err
	}
	return resp, nil
}

func fields(req string) (cmd, key string) {
	f := strings.Fields(req)
	if len(f) > 0 {
		cmd = strings.ToUpper(f[0])
	}
	if len(f) > 1 {
		key = f[1]
	}
	return cmd, key
}

func (s *session) handle(req string) (resp string, quit bool, err error) {
	cmd, key := fields(req)
	if cmd == "EXIT" || cmd == "QUIT" {
		resp, err = s.forward(req)
		return resp, true, err
	}
	switch s.p.mode {
	case StaleReads:
		if cmd == "GET" {
			return s.staleGet(req, key)
		}
	case SplitTxn:
		switch cmd {
		case "START":
			s.depth++
			return okLine, false, nil
		case "COMMIT", "ROLLBACK":
			if s.depth > 0 {
				s.depth--
				return okLine, false, nil
			}
		}
	case IgnoreConflicts:
		return s.ignoreConflicts(req, cmd)
	case IgnoreExpire:
		if cmd == "EXPIRE" {
			req = "PERSIST " + key
		}
	case UnvalidatedListing:
		if cmd == "KEYS" {
			if _, err := io.WriteString(s.side, req+"\n"); err != nil {
				return "", false, err
			}
			resp, err = s.sideR.ReadString('\n')
			return resp, false, err
		}
	}
	resp, err = s.forward(req)
	return resp, false, err
}

func (s *session) staleGet(req, key string) (string, bool, error) {
	p := s.p
	p.mu.Lock()
	p.gets[key]++
	cached, ok := p.cache[key]
	useCache := ok && p.gets[key]%StaleEvery == 0
	p.mu.Unlock()
	if useCache {
		return cached, false, nil
	}
	resp, err := s.forward(req)
	if err != nil {
		return "", false, err
	}
	p.mu.Lock()
	p.cache[key] = resp
	p.mu.Unlock()
	return resp, false, nil
}

var errReplay = errors.New("proxy: replay failed")

func (s *session) ignoreConflicts(req, cmd string) (string, bool, error) {
	resp, err := s.forward(req)
	if err != nil {
		return "", false, err
	}
	ok := strings.Contains(resp, `"status":"Ok"`)
	switch cmd {
	case "START":
		if ok {
			s.depth++
		}
	case "PUT", "DEL":
		if s.depth > 0 && ok {
			s.writes = append(s.writes, req)
		}
	case "ROLLBACK":
		if ok && s.depth > 0 {
			s.depth--
			if s.depth == 0 {
				s.writes = nil
			}
		}
	case "COMMIT":
		if s.depth == 0 {
			break
		}
		s.depth--
		if s.depth > 0 {
			break
		}
		writes := s.writes
		s.writes = nil
		if ok || !strings.Contains(strings.ToLower(resp), "conflict") {
			break
		}
		// The broken part: apply the aborted transaction anyway.
		for _, w := range writes {
			if _, err := s.forward(w); err != nil {
				return "", false, errReplay
			}
		}
		return okLine, false, nil
	}
	return resp, false, nil
}
