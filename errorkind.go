package kvstore

import "bytes"

// errKind is the kind of an Error response, after the stable prefix of
// its mesg (docs/PROTOCOL.md, "Stable error prefixes").
type errKind uint8

// The kinds of Error responses. errOther covers messages without a stable
// prefix (a failed COMPACT, an unexpected engine error).
const (
	errKeyNotFound errKind = iota
	errNoTransaction
	errConflict
	errNestingLimit
	errWrongArguments
	errUnknownCommand
	errEmptyRequest
	errInvalidKey
	errInvalidValue
	errInvalidArgument
	errInvalidUTF8
	errLineTooLong
	errIncompleteRequest
	errTooManyClients
	errAuthRequired
	errInvalidPassword
	errNoPassword
	errProtectedMode
	errOutOfMemory
	errNotDurable
	errTooManyKeys
	errOther
	numErrKinds
)

// errKinds maps each kind to its name in Stats.ErrorsByKind (and the
// kind label of kvd_errors_total) and to the mesg prefix that marks it.
var errKinds = [numErrKinds]struct{ name, prefix string }{
	errKeyNotFound:       {"key_not_found", mesgKeyNotFound},
	errNoTransaction:     {"no_transaction", mesgNoTxn},
	errConflict:          {"conflict", "conflict"},
	errNestingLimit:      {"nesting_limit", "transaction nesting limit reached"},
	errWrongArguments:    {"wrong_arguments", ErrWrongArguments.Error()},
	errUnknownCommand:    {"unknown_command", ErrUnknownCommand.Error()},
	errEmptyRequest:      {"empty_request", ErrEmptyRequest.Error()},
	errInvalidKey:        {"invalid_key", "invalid key"},
	errInvalidValue:      {"invalid_value", "invalid value"},
	errInvalidArgument:   {"invalid_argument", ErrInvalidArgument.Error()},
	errInvalidUTF8:       {"invalid_utf8", ErrInvalidUTF8.Error()},
	errLineTooLong:       {"line_too_long", ErrLineTooLong.Error()},
	errIncompleteRequest: {"incomplete_request", ErrIncompleteRequest.Error()},
	errTooManyClients:    {"too_many_clients", "too many clients"},
	errAuthRequired:      {"auth_required", "authentication required"},
	errInvalidPassword:   {"invalid_password", mesgBadPassword},
	errNoPassword:        {"no_password", "no password is set"},
	errProtectedMode:     {"protected_mode", "protected mode"},
	errOutOfMemory:       {"out_of_memory", "out of memory"},
	errNotDurable:        {"not_durable", "not durable"},
	errTooManyKeys:       {"too_many_keys", "too many keys"},
	errOther:             {"other", ""},
}

// ErrorKinds returns the names of the kinds of Error responses that
// Stats.ErrorsByKind counts, one per stable mesg prefix of the protocol
// ("key_not_found" for "key not found", "auth_required" for
// "authentication required", ...), and "other" for the rest.
func ErrorKinds() []string {
	names := make([]string, numErrKinds)
	for k := range errKinds {
		names[k] = errKinds[k].name
	}
	return names
}

// errorPrefix is how every Error response line starts (see appendError).
const errorPrefix = `{"status":"Error","mesg":"`

// statusLetter is the index in a response line of its status's first
// letter: 'E' for Error, 'O' for Ok. One byte tells the two apart.
const statusLetter = len(`{"status":"`)

// isErrorResponse reports whether the response line resp is an Error,
// from its status's first letter.
func isErrorResponse(resp []byte) bool {
	return len(resp) > statusLetter && resp[statusLetter] == 'E'
}

// responseErrKind returns the kind of the response line resp, and false
// if it is not an Error. The mesg prefixes are plain ASCII without
// characters JSON escapes, so they are matched on the encoded line.
func responseErrKind(resp []byte) (errKind, bool) {
	if !isErrorResponse(resp) || !bytes.HasPrefix(resp, []byte(errorPrefix)) {
		return 0, false
	}
	mesg := resp[len(errorPrefix):]
	for k := range errOther {
		if bytes.HasPrefix(mesg, []byte(errKinds[k].prefix)) {
			return k, true
		}
	}
	return errOther, true
}
