// Package client is a Go client for a kvd server (see docs/PROTOCOL.md in the
// repository): single-key commands, key expiry and listing, and remote
// transactions with the semantics of the embedded kvstore.Txn.
//
// A Client is safe for concurrent use by many goroutines. It keeps a small
// pool of connections (WithPoolSize). Requests made at the same time by
// different goroutines share these connections: they are written in the
// order they were made, in as few system calls as possible (automatic
// pipelining), and one reader goroutine per connection hands each response
// line to the request it answers, in FIFO order. A busy Client therefore
// needs far fewer round trips than requests.
//
// A transaction (Begin, Update, View) holds a connection of its own for its
// whole life, because the server keeps the transaction's state per
// connection. When it ends the connection goes back to an idle list for the
// next transaction.
//
// Every call takes a context.Context. When the context ends before the
// response has arrived, the call returns the context's error at once; the
// request may still have been executed by the server. The connection stays
// usable: its reader reads the late response and discards it, so the
// responses of later requests still go to the right callers. A transaction
// whose call was cancelled cannot know its own state, so it is ended: its
// connection is closed, and the server rolls the transaction back. A
// server that stops answering without closing is given up on after
// WithStallTimeout, when a call's context ends.
//
// Server errors are returned as *ServerError values carrying the server's
// message; errors.Is matches them against the sentinel errors of this
// package (ErrNotFound, ErrConflict, ErrAuthRequired, ...) by the stable
// message prefixes of the protocol. Network errors are returned as they
// are; a connection that failed is closed and replaced by a new one on a
// later call, so a Client recovers by itself from a server that restarted
// or closed idle connections. A request that failed with a network error
// may or may not have been executed; the Client never resends it.
//
// The wire protocol is line-based, so some keys and values cannot be sent:
// keys must be non-empty UTF-8 without whitespace or control characters,
// and values UTF-8 without a newline, without leading spaces or tabs (the
// server reads them as the separator) and without a trailing carriage
// return (the server drops it). The Client checks every key and value
// before sending anything and returns ErrInvalidKey or ErrInvalidValue
// instead of a request the server would misread.
//
// This package depends only on the standard library; it does not import the
// server's package, so a program that only talks to a server does not link
// the store.
package client
