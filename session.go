package kvstore

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"iter"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultMaxTxnDepth is the nesting limit a Session (and so a Server)
// enforces when none is configured.
const DefaultMaxTxnDepth = 100

// helpText is the result of HELP.
const helpText = "commands: PUT <key> <value> | GET <key> | DEL <key> | EXPIRE <key> <seconds> | TTL <key> | PERSIST <key> | KEYS <prefix>* [LIMIT <n> [AFTER <key>]] | START | COMMIT | ROLLBACK | PING | HELP | STATS | AUTH <password> | COMPACT | EXIT (or QUIT)"

// Messages of the errors a Session answers with. Protocol errors use the
// text of the error returned by ParseRequest.
const (
	mesgKeyNotFound = "key not found: "
	mesgNoTxn       = "no transaction"
	mesgConflict    = "conflict: another client changed a key this transaction read; transaction aborted"
	mesgTooDeep     = "transaction nesting limit reached: "
	mesgNotDurable  = "not durable: "
	mesgOutOfMemory = "out of memory: the store is at its memory limit; write refused (a refused COMMIT aborts the transaction)"
	mesgAuthNeeded  = "authentication required: send AUTH <password> first"
	mesgBadPassword = "invalid password"
	mesgNoPassword  = "no password is set: AUTH is not needed"
	mesgTooManyKeys = "too many keys to list at once: page with KEYS <pattern> LIMIT <n> [AFTER <last key of the previous page>]"
	mesgPageCut     = "page cut at the size limit: continue with AFTER the last key"
)

// Session is one client's state: the store it works on and its open
// transaction, if any (START inside a transaction nests). It executes
// parsed requests and appends one response line per request. A front end
// creates one Session per client and calls Close when the client goes away.
//
// A Session is not safe for concurrent use; different Sessions on the same
// Store are.
type Session struct {
	store    *Store
	txn      *Txn // nil outside a transaction
	maxDepth int
	tooDeep  string // preformatted nesting limit message detail

	// need is the commit timestamp that must be logged before the
	// responses appended so far may be sent (see waitDurable): synced
	// under SyncAlways, handed to the operating system under the other
	// modes. With deferDurable (the Server), Execute leaves the waiting
	// (or the writing) to the caller, once per batch of requests.
	need         uint64
	deferDurable bool
	// reveals is the commit timestamp the response being executed
	// acknowledges or shows, set by execute for the requests that know
	// it (0: none); revealsAll, the default, stands for every commit
	// published. The log is written in commit order, so once that
	// commit is synced, so is everything the response depends on.
	reveals uint64

	// password is the SHA-256 of the password the client must send with
	// AUTH before anything but AUTH, PING, HELP and EXIT; nil when none
	// is required. authed is set by a correct AUTH.
	password *[sha256.Size]byte
	authed   bool

	// stats answers STATS; nil means a Store-only figure (see
	// storeStats). The Server sets it to Server.Stats.
	stats func() Stats

	// counts are this session's counters, read by Server.Stats while
	// the session runs; each is written only by the session (bytesIn
	// and bytesOut by its connection's reader and writer, the same
	// goroutine or event loop). The sessions of an event loop's
	// connections share the loop's: counters per connection cost more
	// memory than the rest of an idle connection's state.
	counts *sessionCounts

	// executed counts the requests executed (as counts.byCmd does), for
	// the front end's latency histogram: the requests executed since it
	// last observed are the ones its next write answers. Only the
	// session's goroutine reads it.
	executed uint64

	// authBug is a deliberate bug for tests, to show that the AUTH
	// checkers catch a broken access check (see authBugMode).
	authBug       authBugMode
	clearPassword string // for authBugPrefix only; set by tests
}

// authBugMode selects a deliberately broken access check, for tests only;
// the zero value is the real one.
type authBugMode uint8

const (
	authCorrect authBugMode = iota
	// authBugOneFree lets the first refused request through before AUTH.
	authBugOneFree
	// authBugPrefix accepts, as the password, any prefix of it (what a
	// hand-written byte loop that stops at the shorter input does),
	// instead of comparing hashes in constant time. The test sets
	// clearPassword, which nothing else does.
	authBugPrefix
)

// sessionCounts are the counters of one session, or of the sessions of
// one event loop. Only the session (or the loop) writes them (an
// uncontended atomic add per request); Server.Stats reads them.
type sessionCounts struct {
	byCmd     [len(commandNames)]atomic.Uint64 // requests by Command
	commits   atomic.Uint64
	conflicts atomic.Uint64
	errs      [numErrKinds]atomic.Uint64 // Error responses by kind
	bytesIn   atomic.Uint64              // bytes read from the client
	bytesOut  atomic.Uint64              // bytes written to the client
}

// countError counts the Error response resp, if it is one.
func (c *sessionCounts) countError(resp []byte) {
	if k, ok := responseErrKind(resp); ok {
		c.errs[k].Add(1)
	}
}

// RequirePassword makes the session refuse every request but AUTH, PING,
// HELP and EXIT (or QUIT) until the client sends "AUTH <password>" with
// this password. The comparison is done in constant time on hashes, so
// neither the password nor its length leaks through timing. An empty
// password removes the requirement.
func (s *Session) RequirePassword(password string) {
	if password == "" {
		s.password, s.authed = nil, false
		return
	}
	h := sha256.Sum256([]byte(password))
	s.requireHash(&h)
}

// requireHash is RequirePassword with the hash computed once by the
// Server for all its sessions.
func (s *Session) requireHash(h *[sha256.Size]byte) {
	s.password, s.authed = h, false
}

// Authenticated reports whether the session may run every command: no
// password is required, or AUTH gave the right one.
func (s *Session) Authenticated() bool { return s.password == nil || s.authed }

// NewSession returns a Session on store that allows at most maxTxnDepth
// nested transaction levels. A maxTxnDepth of zero or less means
// DefaultMaxTxnDepth; values above the engine's MaxTxnDepth are lowered to
// it.
func NewSession(store *Store, maxTxnDepth int) *Session {
	if maxTxnDepth <= 0 {
		maxTxnDepth = DefaultMaxTxnDepth
	}
	if maxTxnDepth > MaxTxnDepth {
		maxTxnDepth = MaxTxnDepth
	}
	return newSession(store, maxTxnDepth, new(sessionCounts))
}

// newSession is NewSession with a valid maxTxnDepth and the counters the
// session adds to (which the caller sets later when nil).
func newSession(store *Store, maxTxnDepth int, counts *sessionCounts) *Session {
	return &Session{store: store, maxDepth: maxTxnDepth, tooDeep: strconv.Itoa(maxTxnDepth) + " levels", counts: counts}
}

// Depth returns the number of open transaction levels: 0 outside a
// transaction.
func (s *Session) Depth() int {
	if s.txn == nil {
		return 0
	}
	return s.txn.Depth()
}

// Close rolls back the open transaction, all levels of it, if there is
// one. Nothing of it is applied. The Session can be used again afterwards.
func (s *Session) Close() {
	if s.txn == nil {
		return
	}
	for s.txn.Depth() > 0 {
		if s.txn.Rollback() != nil {
			break
		}
	}
	s.txn = nil
}

// ExecuteLine parses line with ParseRequest, executes it and appends the
// one response line to dst. It returns the extended buffer and whether the
// client asked to quit (EXIT or QUIT), in which case the caller should
// close the connection after sending the response.
func (s *Session) ExecuteLine(dst, line []byte) (out []byte, quit bool) {
	req, err := ParseRequest(line)
	if err != nil {
		out = appendError(dst, err.Error(), "")
		s.counts.countError(out[len(dst):])
		return out, false
	}
	return s.Execute(dst, req)
}

// Execute executes req and appends its one response line to dst. It
// returns the extended buffer and whether the request was EXIT or QUIT.
//
// Requests built by hand (not by ParseRequest) are checked with
// Request.Validate first. Execute copies what the store keeps (keys and
// values of writes, in one allocation per PUT) and nothing else: a GET
// outside a transaction does not allocate.
//
// On a durable store under SyncAlways (see Open), a response that
// acknowledges a write, or shows data, is appended only once the commits
// it depends on are synced: no response reveals a commit that a crash
// could lose. If the log failed, the response is an error instead.
func (s *Session) Execute(dst []byte, req Request) (out []byte, quit bool) {
	n := len(dst)
	s.reveals = revealsAll
	out, quit = s.execute(dst, req)
	if s.store.syncAlways() {
		dep := s.reveals
		switch s.store.dur.revealBug {
		case revealNoneOfReads:
			if req.Cmd == CmdGet {
				dep = 0
			}
		case revealAllPublished:
			dep = revealsAll
		}
		if dep == revealsAll {
			// Every commit this response could reveal or acknowledge
			// is published by now: waiting for the newest one covers
			// them all.
			dep = s.store.oracle.committed.Load()
		}
		s.need = max(s.need, dep)
	} else if s.store.dur != nil && !s.store.dur.log.Failed() {
		// The log is written in commit order, and writing it is cheap:
		// every response waits for every commit published so far to be
		// handed to the operating system (one write for a whole batch).
		// Once the log has failed, the store takes no more writes and
		// answers from memory (a restart is due).
		s.need = s.store.oracle.committed.Load()
	}
	if s.need != 0 && !s.deferDurable {
		if err := s.waitDurable(); err != nil {
			out = appendError(out[:n], mesgNotDurable, err.Error())
		}
	}
	if isErrorResponse(out[n:]) {
		s.counts.countError(out[n:])
	}
	return out, quit
}

// revealsAll is Session.reveals for a response that may reveal any commit
// published when it was made.
const revealsAll = ^uint64(0)

// waitDurable waits until the responses appended so far may be sent: the
// commits they depend on are logged (synced under SyncAlways, written
// otherwise). An error (the log failed) means they must not be sent.
func (s *Session) waitDurable() error {
	if s.need == 0 {
		return nil
	}
	if err := s.store.waitDurable(s.need); err != nil {
		return err
	}
	s.need = 0
	return nil
}

// durableNeed returns the commit timestamp the responses appended so far
// wait for, or 0 if they may be sent now.
func (s *Session) durableNeed() uint64 {
	if s.need != 0 && s.store.logged() >= s.need {
		s.need = 0
	}
	return s.need
}

// execute is Execute without the wait for durability.
func (s *Session) execute(dst []byte, req Request) (out []byte, quit bool) {
	if !req.parsed {
		if err := req.Validate(); err != nil {
			s.reveals = 0
			return appendError(dst, err.Error(), ""), false
		}
	}
	if int(req.Cmd) < len(s.counts.byCmd) {
		s.counts.byCmd[req.Cmd].Add(1)
		s.executed++
	}
	if s.password != nil && !s.authed {
		switch req.Cmd {
		case CmdAuth, CmdPing, CmdHelp, CmdExit:
		default:
			if s.authBug == authBugOneFree {
				s.authBug = authCorrect // just this once
				break
			}
			s.reveals = 0
			return appendError(dst, mesgAuthNeeded, ""), false
		}
	}
	switch req.Cmd {
	case CmdGet:
		// Neither Store.Get nor Txn.Get retains the key (a transaction
		// copies the keys it records for its conflict check), so a view of
		// the line buffer is enough.
		var v string
		var ok bool
		switch {
		case s.txn == nil && s.store.syncAlways():
			// The answer, value or absence, reveals one commit: the
			// value's, or the deletion that may have removed the key.
			v, s.reveals, ok = s.store.getDep(bytesView(req.Key))
		case s.txn == nil:
			v, ok = s.store.Get(bytesView(req.Key))
		default:
			// The snapshot's: the transaction's reads show nothing
			// newer.
			v, ok = s.txn.Get(bytesView(req.Key))
			s.reveals = s.txn.readTs
		}
		if !ok {
			return appendError(dst, mesgKeyNotFound, bytesView(req.Key)), false
		}
		return appendResult(dst, v), false

	case CmdPut:
		if s.txn == nil {
			// The store copies key and value (one allocation), so views
			// of the line buffer are enough.
			ts, err := s.store.put(bytesView(req.Key), bytesView(req.Value), 0)
			if err != nil {
				return s.txnError(dst, err), false
			}
			s.reveals = ts // acknowledges its own commit, nothing else
			s.counts.commits.Add(1)
			return appendOk(dst), false
		}
		// A transaction keeps its writes until it commits: give it a copy.
		key, value := keyValueString(req.Key, req.Value)
		if err := s.txn.Put(key, value); err != nil {
			return s.txnError(dst, err), false
		}
		s.reveals = 0 // buffered: nothing published
		return appendOk(dst), false

	case CmdDel:
		key := string(req.Key)
		var existed bool
		if s.txn == nil {
			var err error
			var ts uint64
			if existed, ts, err = s.store.del(key); err != nil {
				return s.txnError(dst, err), false
			}
			if existed {
				s.reveals = ts
				s.counts.commits.Add(1)
			}
		} else {
			var err error
			if existed, err = s.txn.Delete(key); err != nil {
				return s.txnError(dst, err), false
			}
			s.reveals = s.txn.readTs
		}
		if !existed {
			return appendError(dst, mesgKeyNotFound, key), false
		}
		return appendOk(dst), false

	case CmdStart:
		s.reveals = 0
		if s.txn == nil {
			s.txn = s.store.Begin()
			s.txn.noWait = true // Execute waits
			return appendOk(dst), false
		}
		if s.txn.Depth() >= s.maxDepth {
			return appendError(dst, mesgTooDeep, s.tooDeep), false
		}
		if err := s.txn.Begin(); err != nil {
			return s.txnError(dst, err), false
		}
		return appendOk(dst), false

	case CmdCommit, CmdRollback:
		if s.txn == nil {
			return appendError(dst, mesgNoTxn, ""), false
		}
		var err error
		t := s.txn
		if req.Cmd == CmdCommit {
			outer := t.Depth() == 1
			err = t.Commit()
			if outer && err == nil {
				s.counts.commits.Add(1)
			}
		} else {
			err = t.Rollback()
		}
		if t.Depth() == 0 {
			s.txn = nil
		}
		if err != nil {
			return s.txnError(dst, err), false // a conflict reveals others' commits
		}
		// Acknowledges the outermost commit's writes, if any (0 for a
		// nested level, a rollback, a read-only commit).
		s.reveals = t.commitTs
		return appendOk(dst), false

	case CmdAuth:
		s.reveals = 0
		if s.password == nil {
			return appendError(dst, mesgNoPassword, ""), false
		}
		h := sha256.Sum256(req.Value)
		ok := subtle.ConstantTimeCompare(h[:], s.password[:]) == 1
		if s.authBug == authBugPrefix {
			ok = strings.HasPrefix(s.clearPassword, string(req.Value))
		}
		if !ok {
			return appendError(dst, mesgBadPassword, ""), false
		}
		s.authed = true
		return appendOk(dst), false
	case CmdStats:
		var st Stats
		if s.stats != nil {
			st = s.stats()
		} else {
			st = s.storeStats()
		}
		return appendStats(dst, st), false
	case CmdExpire, CmdPersist:
		key := string(req.Key)
		var existed bool
		var err error
		switch {
		case s.txn == nil:
			// Execute waits for the log, once per response or batch.
			existed, _, err = s.store.setExpiry(key, time.Duration(req.Seconds)*time.Second, req.Cmd == CmdPersist)
		case req.Cmd == CmdPersist:
			existed, err = s.txn.Persist(key)
		default:
			existed, err = s.txn.Expire(key, time.Duration(req.Seconds)*time.Second)
		}
		if err != nil {
			return s.txnError(dst, err), false
		}
		if !existed {
			return appendError(dst, mesgKeyNotFound, key), false
		}
		return appendOk(dst), false

	case CmdTTL:
		var ttl time.Duration
		var ok bool
		if s.txn == nil {
			ttl, ok = s.store.TTL(bytesView(req.Key))
		} else {
			ttl, ok = s.txn.TTL(bytesView(req.Key))
		}
		if !ok {
			return appendError(dst, mesgKeyNotFound, bytesView(req.Key)), false
		}
		secs := int64(-1)
		if ttl > 0 {
			secs = int64((ttl + time.Second - 1) / time.Second) // rounded up
		}
		dst = append(dst, `{"status":"Ok","result":"`...)
		dst = strconv.AppendInt(dst, secs, 10)
		return append(dst, "\"}\n"...), false

	case CmdKeys:
		return s.keys(dst, req), false

	case CmdPing:
		s.reveals = 0
		return appendResult(dst, "PONG"), false
	case CmdHelp:
		s.reveals = 0
		return appendResult(dst, helpText), false
	case CmdCompact:
		started, err := s.store.startCompaction()
		switch {
		case err != nil:
			return appendError(dst, "compact: ", err.Error()), false
		case !started:
			return appendResult(dst, "compaction already running"), false
		}
		return appendResult(dst, "compaction started"), false
	case CmdExit:
		s.reveals = 0
		return AppendResponse(dst, Response{Mesg: "Bye"}), true
	}
	return appendError(dst, ErrUnknownCommand.Error(), ""), false
}

// keys answers KEYS: the keys of the prefix in byte order, in the
// transaction if one is open, as a JSON array, within the limits described
// at MaxUnpagedKeys.
func (s *Session) keys(dst []byte, req Request) []byte {
	prefix := string(req.KeysPrefix())
	after := string(req.After)
	var seq iter.Seq2[string, string]
	if s.txn == nil {
		seq = s.store.AscendAfter(prefix, after)
	} else {
		seq = s.txn.AscendAfter(prefix, after)
	}
	limit := req.Limit
	if limit == 0 {
		limit = MaxUnpagedKeys
	}
	start := len(dst)
	dst = append(dst, `{"status":"Ok","result":[`...)
	n, full, cut := 0, false, false
	for k := range seq {
		if n == limit {
			full = true // an unpaged listing has one more key than it may hold
			break
		}
		if n > 0 && len(dst)-start+len(k) > MaxKeysBytes {
			cut = true
			break
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = appendJSONString(dst, k)
		dst = append(dst, '"')
		n++
		if n == req.Limit {
			break // a page reads no further than its last key
		}
	}
	if req.Limit == 0 && (full || cut) {
		return appendError(dst[:start], mesgTooManyKeys, "")
	}
	dst = append(dst, ']')
	if cut {
		dst = append(dst, `,"mesg":"`+mesgPageCut+`"`...)
	}
	return append(dst, "}\n"...)
}

// txnError appends the response for an error returned by the engine.
func (s *Session) txnError(dst []byte, err error) []byte {
	switch {
	case errors.Is(err, ErrConflict):
		s.counts.conflicts.Add(1)
		return appendError(dst, mesgConflict, "")
	case errors.Is(err, ErrTxnTooDeep):
		return appendError(dst, mesgTooDeep, s.tooDeep)
	case errors.Is(err, ErrTxnClosed):
		s.txn = nil
		return appendError(dst, mesgNoTxn, "")
	case errors.Is(err, ErrMemoryLimit):
		return appendError(dst, mesgOutOfMemory, "")
	case errors.Is(err, ErrLogFailed), errors.Is(err, ErrClosed):
		return appendError(dst, mesgNotDurable, err.Error())
	}
	return appendError(dst, "transaction error: ", err.Error())
}

// keyValueString copies key and value into one new string, in a single
// allocation, and returns the two parts of it.
func keyValueString(key, value []byte) (string, string) {
	var b strings.Builder
	b.Grow(len(key) + len(value))
	b.Write(key)
	b.Write(value)
	kv := b.String()
	return kv[:len(key)], kv[len(key):]
}
