package client

import (
	"errors"
	"strings"
)

// Sentinel errors. Errors answered by the server are *ServerError values
// that match these with errors.Is by the message prefixes docs/PROTOCOL.md
// declares stable; the others are returned by the Client itself.
var (
	// ErrNotFound: the key does not exist (server message "key not
	// found"). Returned by Get, Expire, TTL and Persist; Delete reports a
	// missing key as existed == false instead.
	ErrNotFound = errors.New("key not found")

	// ErrConflict: the outermost Commit failed because another client
	// changed a key this transaction read (server message "conflict").
	// The transaction has been rolled back and has ended. Update returns
	// it, wrapped, when every attempt conflicted.
	ErrConflict = errors.New("conflict")

	// ErrNoTransaction: COMMIT or ROLLBACK without an open transaction
	// (server message "no transaction").
	ErrNoTransaction = errors.New("no transaction")

	// ErrTxnTooDeep: Txn.Begin past the server's nesting limit (server
	// message "transaction nesting limit reached").
	ErrTxnTooDeep = errors.New("transaction nesting limit reached")

	// ErrWrongArguments: the server refused a request's arguments
	// (server message "wrong number of arguments").
	ErrWrongArguments = errors.New("wrong number of arguments")

	// ErrUnknownCommand: the server does not know the command (server
	// message "unknown command"), e.g. an older server without KEYS.
	ErrUnknownCommand = errors.New("unknown command")

	// ErrAuthRequired: the server has a password and the Client was not
	// given one (server message "authentication required"); see
	// WithPassword.
	ErrAuthRequired = errors.New("authentication required")

	// ErrInvalidPassword: the password given with WithPassword is wrong
	// (server message "invalid password").
	ErrInvalidPassword = errors.New("invalid password")

	// ErrOutOfMemory: the server is at its memory limit and refused a
	// write (server message "out of memory"); nothing of it was applied.
	ErrOutOfMemory = errors.New("out of memory")

	// ErrProtectedMode: the server refuses clients from other hosts until
	// it has a password (server message "protected mode").
	ErrProtectedMode = errors.New("protected mode")

	// ErrTooManyClients: the server is at its connection limit (server
	// message "too many clients").
	ErrTooManyClients = errors.New("too many clients")

	// ErrLineTooLong: the request was longer than the server's line limit
	// (server message "request line too long").
	ErrLineTooLong = errors.New("request line too long")

	// ErrInvalidKey: a key that the protocol cannot carry: empty, not
	// UTF-8, or with whitespace or control characters. The Client returns
	// it without sending anything; the server's "invalid key" message
	// matches it too.
	ErrInvalidKey = errors.New("invalid key")

	// ErrInvalidValue: a value (or password) that the protocol cannot
	// carry: not UTF-8, with a newline, starting with a space or tab, or
	// ending in a carriage return. The Client returns it without sending
	// anything; the server's "invalid value" message matches it too.
	ErrInvalidValue = errors.New("invalid value")

	// ErrInvalidArgument: an argument other than a key or value that is
	// out of range, such as a non-positive time to live or page size. The
	// Client refuses what it can check without sending anything; the
	// server's "invalid argument" message (e.g. a time to live past its
	// maximum) matches it too.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrTooManyKeys: Keys without paging matched more keys than the
	// server lists at once (server message "too many keys"); use KeysPage
	// or AllKeys.
	ErrTooManyKeys = errors.New("too many keys")

	// ErrTxnClosed: a call on a Txn whose outermost level has ended
	// (committed, rolled back, conflicted, or broken by a network error or
	// a cancelled call).
	ErrTxnClosed = errors.New("transaction closed")

	// ErrTxnReadOnly: Put, Delete, Expire or Persist on the read-only
	// transaction that View passes to its function. Nothing is sent.
	ErrTxnReadOnly = errors.New("transaction is read-only")

	// ErrClosed: the Client has been closed.
	ErrClosed = errors.New("client closed")

	// ErrProtocol: the server sent something that is not a response of
	// the kvd protocol. The connection is closed.
	ErrProtocol = errors.New("kvd protocol violation")
)

// serverPrefixes maps the stable prefixes of server error messages to the
// sentinel errors they match. Longer prefixes that share a start with a
// shorter one must come first.
var serverPrefixes = []struct {
	prefix string
	err    error
}{
	{"key not found", ErrNotFound},
	{"conflict", ErrConflict},
	{"no transaction", ErrNoTransaction},
	{"transaction nesting limit reached", ErrTxnTooDeep},
	{"wrong number of arguments", ErrWrongArguments},
	{"unknown command", ErrUnknownCommand},
	{"authentication required", ErrAuthRequired},
	{"invalid password", ErrInvalidPassword},
	{"out of memory", ErrOutOfMemory},
	{"protected mode", ErrProtectedMode},
	{"too many clients", ErrTooManyClients},
	{"request line too long", ErrLineTooLong},
	{"invalid key", ErrInvalidKey},
	{"invalid value", ErrInvalidValue},
	{"invalid argument", ErrInvalidArgument},
	{"too many keys", ErrTooManyKeys},
}

// ServerError is an Error response of the server. Mesg is the server's
// message, unchanged. errors.Is(err, ErrNotFound) (and the other sentinel
// errors of the server's stable message prefixes) reports whether the
// message starts with that prefix.
type ServerError struct {
	// Cmd is the command of the request, e.g. "GET".
	Cmd string
	// Mesg is the server's message.
	Mesg string
}

// Error returns "kvd: CMD: mesg".
func (e *ServerError) Error() string {
	return "kvd: " + e.Cmd + ": " + e.Mesg
}

// Unwrap returns the sentinel error of e's message prefix, or nil, so that
// errors.Is(err, ErrNotFound) matches a "key not found" response.
func (e *ServerError) Unwrap() error { return sentinelOf(e.Mesg) }

// sentinelOf returns the sentinel error whose prefix mesg starts with, or
// nil.
func sentinelOf(mesg string) error {
	for _, p := range serverPrefixes {
		if strings.HasPrefix(mesg, p.prefix) {
			return p.err
		}
	}
	return nil
}
