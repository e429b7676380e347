package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// config is one benchmark run's settings, shared read-only by the workers.
type config struct {
	addr     string
	proto    protocol
	conns    int
	pipeline int
	duration time.Duration
	requests int64   // operations in all when > 0; otherwise run for duration
	rate     float64 // offered operations per second in all; 0: closed loop
	get, put int     // GET:PUT ratio
	txn      float64
	txnKeys  int
	keys     *keyspace
	value    []byte
	seed     uint64
}

// unit is one operation of a pipelined batch: a single request or a whole
// transaction; end is the index in worker.exp after its last reply.
type unit struct {
	end int
	txn bool
}

// worker drives one connection: it builds a batch of pipeline operations
// into a reused buffer, writes it with one call, then reads every reply and
// records each operation's latency from the write to the reply that
// completed it. Nothing in that loop allocates.
type worker struct {
	id  int
	cfg *config

	conn net.Conn
	r    *bufio.Reader
	rng  *rng

	buf   []byte
	exp   []expect
	units []unit
	tkeys [][]byte

	lat    histogram // single requests
	txnLat histogram // whole transactions

	ops       uint64 // operations completed (a transaction is one)
	requests  uint64 // protocol requests answered
	errs      uint64 // error replies (not misses, not conflicts)
	misses    uint64 // GETs of a missing key
	txns      uint64 // transactions attempted
	conflicts uint64 // transactions aborted by a conflict
	firstErr  string // first error reply, for the summary
	connErr   error  // what ended the connection early, if anything

	progress atomic.Uint64 // ops, read by the progress printer
	errCount atomic.Uint64 // errs, read by the progress printer
}

func newWorker(id int, cfg *config, conn net.Conn) *worker {
	return &worker{
		id:    id,
		cfg:   cfg,
		conn:  conn,
		r:     bufio.NewReaderSize(conn, 64<<10),
		rng:   newRNG(cfg.seed*1000003 + uint64(id)),
		buf:   make([]byte, 0, 64<<10),
		tkeys: make([][]byte, cfg.txnKeys),
	}
}

// buildBatch fills w.buf, w.exp and w.units with n operations.
func (w *worker) buildBatch(n int) {
	cfg, p, ks := w.cfg, w.cfg.proto, w.cfg.keys
	w.buf, w.exp, w.units = w.buf[:0], w.exp[:0], w.units[:0]
	for i := 0; i < n; i++ {
		if cfg.txn > 0 && (cfg.txn >= 1 || float64(w.rng.next()>>11)/(1<<53) < cfg.txn) {
			for j := range w.tkeys {
				w.tkeys[j] = ks.key(w.rng.intn(ks.n))
			}
			w.buf, w.exp = p.appendTxn(w.buf, w.exp, w.tkeys, cfg.value)
			w.units = append(w.units, unit{end: len(w.exp), txn: true})
			continue
		}
		k := ks.key(w.rng.intn(ks.n))
		if cfg.put > 0 && w.rng.intn(cfg.get+cfg.put) < cfg.put {
			w.buf = p.appendPut(w.buf, k, cfg.value)
			w.exp = append(w.exp, expectOK)
		} else {
			w.buf = p.appendGet(w.buf, k)
			w.exp = append(w.exp, expectGet)
		}
		w.units = append(w.units, unit{end: len(w.exp)})
	}
}

// roundTrip writes the current batch and reads all of its replies; the
// latencies count from t0.
func (w *worker) roundTrip(t0 time.Time) error {
	if _, err := w.conn.Write(w.buf); err != nil {
		return err
	}
	j := 0
	for _, u := range w.units {
		conflict := false
		for ; j < u.end; j++ {
			rep, msg, err := w.cfg.proto.readReply(w.r)
			if err != nil {
				return err
			}
			switch judge(w.exp[j], rep) {
			case outMiss:
				w.misses++
			case outConflict:
				conflict = true
			case outError:
				w.errs++
				w.errCount.Add(1)
				if w.firstErr == "" {
					w.firstErr = fmt.Sprintf("%s reply to a %s request: %q", rep, expectName(w.exp[j]), msg)
				}
			}
		}
		d := time.Since(t0)
		if u.txn {
			w.txns++
			if conflict {
				w.conflicts++
			}
			w.txnLat.record(d)
		} else {
			w.lat.record(d)
		}
	}
	w.ops += uint64(len(w.units))
	w.requests += uint64(len(w.exp))
	w.progress.Add(uint64(len(w.units)))
	return nil
}

func expectName(e expect) string {
	switch e {
	case expectGet:
		return "GET"
	case expectCommit:
		return "COMMIT/EXEC"
	}
	return "write/START"
}

// run loops until stop is set or, when budget > 0, until budget operations
// are done.
//
// With a rate, the worker sends its batches on a schedule (its share of
// the rate, from a start spread over one interval so that the workers do
// not send together), and a batch's latency counts from its scheduled
// time: a late server delays the next batches and is charged for it
// (no coordinated omission, as in wrk2).
func (w *worker) run(stop *atomic.Bool, budget int64) {
	var interval time.Duration
	var next time.Time
	if w.cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(w.cfg.conns*w.cfg.pipeline) / w.cfg.rate)
		next = time.Now().Add(interval * time.Duration(w.id) / time.Duration(w.cfg.conns))
	}
	for !stop.Load() {
		n := w.cfg.pipeline
		if w.cfg.requests > 0 {
			if budget <= 0 {
				return
			}
			if int64(n) > budget {
				n = int(budget)
			}
			budget -= int64(n)
		}
		w.buildBatch(n)
		t0 := time.Now()
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			t0 = next
			next = next.Add(interval)
		}
		if err := w.roundTrip(t0); err != nil {
			w.connErr = err
			return
		}
	}
}

// prefill writes keys [lo, hi) with value, depth requests per batch, and
// returns how many writes were refused.
func (w *worker) prefill(lo, hi, depth int) (refused uint64, err error) {
	p := w.cfg.proto
	for i := lo; i < hi; {
		w.buf, w.exp = w.buf[:0], w.exp[:0]
		for ; i < hi && len(w.exp) < depth; i++ {
			w.buf = p.appendPut(w.buf, w.cfg.keys.key(i), w.cfg.value)
			w.exp = append(w.exp, expectOK)
		}
		if _, err := w.conn.Write(w.buf); err != nil {
			return refused, err
		}
		for range w.exp {
			rep, msg, err := p.readReply(w.r)
			if err != nil {
				return refused, err
			}
			if rep != replyOK {
				refused++
				if w.firstErr == "" {
					w.firstErr = fmt.Sprintf("prefill: %s reply: %q", rep, msg)
				}
			}
		}
	}
	return refused, nil
}

// ping sends one GET and reads its reply, to check that the server accepted
// the connection (a server at its client limit answers with an error and
// closes).
func ping(conn net.Conn, r *bufio.Reader, p protocol) error {
	if _, err := conn.Write(p.appendGet(nil, []byte("kvbench:ping"))); err != nil {
		return err
	}
	rep, msg, err := p.readReply(r)
	if err == io.EOF {
		return fmt.Errorf("server closed the connection")
	}
	if err != nil {
		return err
	}
	if judge(expectGet, rep) == outError {
		return fmt.Errorf("server refused: %s", msg)
	}
	return nil
}
