// Package kvclient is a small, strict client for the kvd wire protocol,
// written for the test suites in this module. It supports pipelining: Send
// queues requests, Flush writes them, and Recv reads the responses in order.
//
// Every response line is validated against the contract (one JSON object,
// status "Ok" or "Error", mesg present on errors, no unknown fields); a
// malformed line is reported as an error wrapping ErrProtocol.
package kvclient

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrProtocol marks a response that breaks the wire contract.
var ErrProtocol = errors.New("kvclient: protocol violation")

// ErrConflict is returned by Commit when the server aborted the transaction
// because of a conflict.
var ErrConflict = errors.New("kvclient: commit conflict")

// ErrNotFound is returned by Get and Del when the key does not exist.
var ErrNotFound = errors.New("kvclient: key not found")

// Response is one decoded response line.
type Response struct {
	Status string  `json:"status"`
	Result *string `json:"result,omitempty"`
	Mesg   *string `json:"mesg,omitempty"`
	// List is the result when it is a JSON array (KEYS); Result is then
	// nil.
	List []string `json:"-"`
}

// OK reports whether the status is "Ok".
func (r Response) OK() bool { return r.Status == "Ok" }

// Message returns mesg, or "" when absent.
func (r Response) Message() string {
	if r.Mesg == nil {
		return ""
	}
	return *r.Mesg
}

// String renders the response for test failure messages; a long result is
// abbreviated.
func (r Response) String() string {
	if r.Result != nil && len(*r.Result) > 100 {
		short := fmt.Sprintf("%s...(%d bytes)", (*r.Result)[:40], len(*r.Result))
		r.Result = &short
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// IsConflict reports whether r is an error response for a commit conflict.
func (r Response) IsConflict() bool {
	return !r.OK() && strings.Contains(strings.ToLower(r.Message()), "conflict")
}

// IsNotFound reports whether r is an error response for a missing key.
func (r Response) IsNotFound() bool {
	return !r.OK() && strings.Contains(strings.ToLower(r.Message()), "not found")
}

// ParseResponse decodes and validates one response line (without the
// trailing newline).
func ParseResponse(line []byte) (Response, error) {
	var raw struct {
		Status string           `json:"status"`
		Result *json.RawMessage `json:"result,omitempty"`
		Mesg   *string          `json:"mesg,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Response{}, fmt.Errorf("%w: %q: %v", ErrProtocol, line, err)
	}
	if dec.More() {
		return Response{}, fmt.Errorf("%w: %q: trailing data", ErrProtocol, line)
	}
	r := Response{Status: raw.Status, Mesg: raw.Mesg}
	if raw.Result != nil {
		var err error
		if b := bytes.TrimSpace(*raw.Result); len(b) > 0 && b[0] == '[' {
			r.List = []string{}
			err = json.Unmarshal(b, &r.List)
		} else {
			r.Result = new(string)
			err = json.Unmarshal(b, r.Result)
		}
		if err != nil {
			return r, fmt.Errorf("%w: %q: result: %v", ErrProtocol, line, err)
		}
	}
	switch r.Status {
	case "Ok":
	case "Error":
		if r.Mesg == nil {
			return r, fmt.Errorf("%w: %q: error without mesg", ErrProtocol, line)
		}
		if raw.Result != nil {
			return r, fmt.Errorf("%w: %q: error with result", ErrProtocol, line)
		}
	default:
		return r, fmt.Errorf("%w: %q: bad status", ErrProtocol, line)
	}
	return r, nil
}

// Client is one connection to a kvd server. It is not safe for concurrent
// use, except that Close may be called from any goroutine.
type Client struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	pending int
}

// DefaultTimeout bounds every blocking call of a Client made by Dial.
const DefaultTimeout = 30 * time.Second

// Dial connects to addr over TCP.
func Dial(addr string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return New(conn), nil
}

// New wraps an established connection.
func New(conn net.Conn) *Client {
	return &Client{
		conn:    conn,
		r:       bufio.NewReaderSize(conn, 64<<10),
		w:       bufio.NewWriterSize(conn, 64<<10),
		timeout: DefaultTimeout,
	}
}

// SetTimeout sets the deadline applied to each Flush and Recv (0: none).
func (c *Client) SetTimeout(d time.Duration) { c.timeout = d }

// Conn returns the underlying connection.
func (c *Client) Conn() net.Conn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Pending returns the number of requests sent whose responses have not been
// received yet.
func (c *Client) Pending() int { return c.pending }

// Send queues one request line; the newline is added. It does not flush.
func (c *Client) Send(req string) error {
	if strings.ContainsAny(req, "\n") {
		return fmt.Errorf("kvclient: request contains a newline: %q", req)
	}
	if _, err := c.w.WriteString(req); err != nil {
		return err
	}
	if err := c.w.WriteByte('\n'); err != nil {
		return err
	}
	c.pending++
	return nil
}

// Flush writes all queued requests.
func (c *Client) Flush() error {
	if c.timeout > 0 {
		if err := c.conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// Recv reads and validates the next response.
func (c *Client) Recv() (Response, error) {
	if c.timeout > 0 {
		if err := c.conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
			return Response{}, err
		}
	}
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return Response{}, err
	}
	c.pending--
	return ParseResponse(line[:len(line)-1])
}

// Do sends one request and returns its response.
func (c *Client) Do(req string) (Response, error) {
	if err := c.Send(req); err != nil {
		return Response{}, err
	}
	if err := c.Flush(); err != nil {
		return Response{}, err
	}
	return c.Recv()
}

// expectOK runs req and turns an error response into an error.
func (c *Client) expectOK(req string) error {
	r, err := c.Do(req)
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("kvclient: %s: %s", req, r.Message())
	}
	return nil
}

// Get returns the value of key, or ErrNotFound.
func (c *Client) Get(key string) (string, error) {
	r, err := c.Do("GET " + key)
	if err != nil {
		return "", err
	}
	switch {
	case r.OK() && r.Result != nil:
		return *r.Result, nil
	case r.OK():
		return "", fmt.Errorf("%w: GET %s: Ok without result", ErrProtocol, key)
	case r.IsNotFound():
		return "", ErrNotFound
	default:
		return "", fmt.Errorf("kvclient: GET %s: %s", key, r.Message())
	}
}

// Put stores value under key.
func (c *Client) Put(key, value string) error { return c.expectOK("PUT " + key + " " + value) }

// Del deletes key, or returns ErrNotFound.
func (c *Client) Del(key string) error {
	r, err := c.Do("DEL " + key)
	if err != nil {
		return err
	}
	switch {
	case r.OK():
		return nil
	case r.IsNotFound():
		return ErrNotFound
	default:
		return fmt.Errorf("kvclient: DEL %s: %s", key, r.Message())
	}
}

// Start opens a (possibly nested) transaction.
func (c *Client) Start() error { return c.expectOK("START") }

// Rollback rolls back the innermost transaction.
func (c *Client) Rollback() error { return c.expectOK("ROLLBACK") }

// Commit commits the innermost transaction. A conflict is reported as
// ErrConflict; a network error means the outcome is unknown.
func (c *Client) Commit() error {
	r, err := c.Do("COMMIT")
	if err != nil {
		return err
	}
	switch {
	case r.OK():
		return nil
	case r.IsConflict():
		return fmt.Errorf("%w: %s", ErrConflict, r.Message())
	default:
		return fmt.Errorf("kvclient: COMMIT: %s", r.Message())
	}
}
