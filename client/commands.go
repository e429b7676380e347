package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"
)

// executor runs one request: a Client on a shared connection, a Txn on its
// own.
type executor interface {
	exec(ctx context.Context, cmd string, cl *call) (response, error)
}

// request builds a call for the request line made of parts joined by
// single spaces.
func request(parts ...string) *call {
	cl := getCall()
	for i, p := range parts {
		if i > 0 {
			cl.req = append(cl.req, ' ')
		}
		cl.req = append(cl.req, p...)
	}
	cl.req = append(cl.req, '\n')
	return cl
}

// run executes the request and turns an Error response into a
// *ServerError.
func run(ctx context.Context, e executor, cmd string, cl *call) (response, error) {
	resp, err := e.exec(ctx, cmd, cl)
	if err != nil {
		return response{}, err
	}
	if !resp.ok {
		return response{}, &ServerError{Cmd: cmd, Mesg: resp.mesg}
	}
	return resp, nil
}

func unexpected(cmd string, resp response) error {
	what := "no result"
	if resp.hasResult {
		what = "an unexpected result"
	}
	return fmt.Errorf("%w: %s answered Ok with %s", ErrProtocol, cmd, what)
}

func doGet(ctx context.Context, e executor, key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	resp, err := run(ctx, e, "GET", request("GET", key))
	if err != nil {
		return "", err
	}
	if !resp.hasResult || resp.raw != nil {
		return "", unexpected("GET", resp)
	}
	return resp.result, nil
}

func doPut(ctx context.Context, e executor, key, value string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := checkValue("value", value); err != nil {
		return err
	}
	_, err := run(ctx, e, "PUT", request("PUT", key, value))
	return err
}

func doDelete(ctx context.Context, e executor, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	_, err := run(ctx, e, "DEL", request("DEL", key))
	switch {
	case err == nil:
		return true, nil
	case isServer(err, ErrNotFound):
		return false, nil
	}
	return false, err
}

// isServer reports whether err is an Error response matching sentinel.
func isServer(err, sentinel error) bool {
	se, ok := err.(*ServerError)
	return ok && sentinelOf(se.Mesg) == sentinel
}

// ttlSeconds converts a time to live to the whole seconds EXPIRE takes,
// rounded up.
func ttlSeconds(ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("%w: time to live %v is not positive", ErrInvalidArgument, ttl)
	}
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 {
		secs++
	}
	return strconv.FormatInt(secs, 10), nil
}

func doExpire(ctx context.Context, e executor, key string, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	secs, err := ttlSeconds(ttl)
	if err != nil {
		return err
	}
	_, err = run(ctx, e, "EXPIRE", request("EXPIRE", key, secs))
	return err
}

func doTTL(ctx context.Context, e executor, key string) (time.Duration, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	resp, err := run(ctx, e, "TTL", request("TTL", key))
	if err != nil {
		return 0, err
	}
	if !resp.hasResult || resp.raw != nil {
		return 0, unexpected("TTL", resp)
	}
	n, perr := strconv.ParseInt(resp.result, 10, 64)
	switch {
	case perr != nil || n < -1 || n == 0 || n > int64(maxTTLSeconds):
		return 0, fmt.Errorf("%w: TTL answered %q", ErrProtocol, resp.result)
	case n == -1:
		return 0, nil
	}
	return time.Duration(n) * time.Second, nil
}

// maxTTLSeconds is the longest time to live a time.Duration can hold.
const maxTTLSeconds = int64(1<<63-1) / int64(time.Second)

func doPersist(ctx context.Context, e executor, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := run(ctx, e, "PERSIST", request("PERSIST", key))
	return err
}

// checkPrefix returns an error unless prefix can be sent as the pattern
// "<prefix>*": the characters of a key. The server reads the pattern as a
// literal prefix followed by one '*', so a '*' inside prefix is literal.
// The empty prefix lists every key.
func checkPrefix(prefix string) error {
	if !validKeyChars(prefix) {
		return fmt.Errorf("%w: prefix %q: keys must be UTF-8 without whitespace or control characters", ErrInvalidKey, prefix)
	}
	return nil
}

func decodeKeys(cmd string, resp response) ([]string, error) {
	if resp.raw == nil || resp.raw[0] != '[' {
		return nil, unexpected(cmd, resp)
	}
	var keys []string
	if err := json.Unmarshal(resp.raw, &keys); err != nil {
		return nil, fmt.Errorf("%w: %s result: %v", ErrProtocol, cmd, err)
	}
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

func doKeys(ctx context.Context, e executor, prefix string) ([]string, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	resp, err := run(ctx, e, "KEYS", request("KEYS", prefix+"*"))
	if err != nil {
		return nil, err
	}
	return decodeKeys("KEYS", resp)
}

func doKeysPage(ctx context.Context, e executor, prefix, after string, limit int) (keys []string, more bool, err error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, false, err
	}
	if limit < 1 {
		return nil, false, fmt.Errorf("%w: page size %d is not positive", ErrInvalidArgument, limit)
	}
	var cl *call
	if after == "" {
		cl = request("KEYS", prefix+"*", "LIMIT", strconv.Itoa(limit))
	} else {
		if err := checkKey(after); err != nil {
			return nil, false, err
		}
		cl = request("KEYS", prefix+"*", "LIMIT", strconv.Itoa(limit), "AFTER", after)
	}
	resp, err := run(ctx, e, "KEYS", cl)
	if err != nil {
		return nil, false, err
	}
	keys, err = decodeKeys("KEYS", resp)
	if err != nil {
		return nil, false, err
	}
	if len(keys) > limit {
		return nil, false, fmt.Errorf("%w: KEYS LIMIT %d answered %d keys", ErrProtocol, limit, len(keys))
	}
	for i, k := range keys {
		if !strings.HasPrefix(k, prefix) || (i == 0 && after != "" && k <= after) || (i > 0 && k <= keys[i-1]) {
			return nil, false, fmt.Errorf("%w: KEYS page out of order or outside the prefix at %q", ErrProtocol, k)
		}
	}
	// A full page may have a successor; so may a page the server cut
	// short at its size limit (it says so in mesg).
	more = len(keys) > 0 && (len(keys) == limit || resp.mesg != "")
	return keys, more, nil
}

// allKeys iterates over pages of keysPage until the last.
func allKeys(ctx context.Context, e executor, prefix string, pageSize int) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		after := ""
		for {
			keys, more, err := doKeysPage(ctx, e, prefix, after, pageSize)
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range keys {
				if !yield(k, nil) {
					return
				}
			}
			if !more {
				return
			}
			after = keys[len(keys)-1]
		}
	}
}

func doStats(ctx context.Context, e executor) (map[string]float64, error) {
	resp, err := run(ctx, e, "STATS", request("STATS"))
	if err != nil {
		return nil, err
	}
	if resp.raw == nil || resp.raw[0] != '{' {
		return nil, unexpected("STATS", resp)
	}
	var stats map[string]float64
	if err := json.Unmarshal(resp.raw, &stats); err != nil {
		return nil, fmt.Errorf("%w: STATS result: %v", ErrProtocol, err)
	}
	return stats, nil
}

// exec runs a request on a shared connection.
func (c *Client) exec(ctx context.Context, _ string, cl *call) (response, error) {
	return c.do(ctx, cl)
}

// Get returns the value of key. A missing key is an error matching
// ErrNotFound; an empty value is "" with a nil error.
func (c *Client) Get(ctx context.Context, key string) (string, error) {
	return doGet(ctx, c, key)
}

// Put sets key to value; the key loses any time to live it had. Keys and
// values the protocol cannot carry are refused with ErrInvalidKey or
// ErrInvalidValue, without sending anything.
func (c *Client) Put(ctx context.Context, key, value string) error {
	return doPut(ctx, c, key, value)
}

// Delete removes key and reports whether it existed. A missing key is not
// an error.
func (c *Client) Delete(ctx context.Context, key string) (existed bool, err error) {
	return doDelete(ctx, c, key)
}

// Expire makes key expire ttl from now, rounded up to whole seconds (the
// protocol's unit). A missing key is an error matching ErrNotFound; a ttl
// of zero or less is refused with ErrInvalidArgument (use Delete or
// Persist).
func (c *Client) Expire(ctx context.Context, key string, ttl time.Duration) error {
	return doExpire(ctx, c, key, ttl)
}

// TTL returns the time key has left to live, in whole seconds rounded up,
// or 0 for a key without a time to live. A missing key is an error
// matching ErrNotFound.
func (c *Client) TTL(ctx context.Context, key string) (time.Duration, error) {
	return doTTL(ctx, c, key)
}

// Persist removes key's time to live. A missing key is an error matching
// ErrNotFound.
func (c *Client) Persist(ctx context.Context, key string) error {
	return doPersist(ctx, c, key)
}

// Keys returns the keys that start with prefix ("" for all keys), in byte
// order, with one request ("KEYS <prefix>*"). The server refuses a listing
// larger than its bound (1,000 keys or 1 MiB by default) with an error
// matching ErrTooManyKeys: use KeysPage or AllKeys for prefixes that may
// hold many keys.
func (c *Client) Keys(ctx context.Context, prefix string) ([]string, error) {
	return doKeys(ctx, c, prefix)
}

// KeysPage returns at most limit keys that start with prefix and sort
// after the key after ("" for the first page), in byte order ("KEYS
// <prefix>* LIMIT <limit> AFTER <after>"). more reports whether another
// page may follow: pass the last key of this page as after to get it. (A
// page may hold fewer than limit keys and still have a successor, when
// the server cut it at its size limit.) Outside a transaction each page is
// a separate read: keys created or deleted between pages may or may not
// be listed.
func (c *Client) KeysPage(ctx context.Context, prefix, after string, limit int) (keys []string, more bool, err error) {
	return doKeysPage(ctx, c, prefix, after, limit)
}

// AllKeys iterates over the keys that start with prefix in byte order,
// fetching them pageSize at a time with KeysPage. An error ends the
// iteration with a final ("", err) pair. Breaking out of the loop stops
// fetching.
func (c *Client) AllKeys(ctx context.Context, prefix string, pageSize int) iter.Seq2[string, error] {
	return allKeys(ctx, c, prefix, pageSize)
}

// Stats returns the server's counters (STATS): at least "keys",
// "connections", "commands", "commits", "conflicts", "uptime_seconds" and
// the memory in use, by name.
func (c *Client) Stats(ctx context.Context) (map[string]float64, error) {
	return doStats(ctx, c)
}
