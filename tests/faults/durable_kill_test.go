//go:build linux || darwin

package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// keyOp is one write of an owned key: a put of val, or a delete, with the
// writer's sequence number (values are "<seq>").
type keyOp struct {
	seq int
	val string
	del bool
}

// ownedKey is the model of a key written by one client only, so its
// writes are sequential: the recovered state must be the last
// acknowledged write, or the write that was in flight at the kill.
type ownedKey struct {
	last    keyOp   // last acknowledged (seq 0, del: never written)
	pending *keyOp  // in flight at the kill: outcome unknown
	ops     []keyOp // this round's writes, acknowledged or pending
}

// killModel is what the clients of all rounds have been told.
type killModel struct {
	mu    sync.Mutex
	keys  map[string]*ownedKey
	reads map[string]int // key -> highest seq any client read this round
	pairs []string       // transaction pair prefixes
}

func (m *killModel) key(k string) *ownedKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.keys[k]
	if o == nil {
		o = &ownedKey{last: keyOp{del: true}}
		m.keys[k] = o
	}
	return o
}

const bankAccounts, bankTotal = 5, 500

// TestKillNineKeepsAcknowledgedWrites kills the real kvd with SIGKILL, many
// times, under concurrent PUT, DEL, transaction and bank-transfer load,
// restarting it on the same directory each time (event loops and goroutine
// backends in turn, and -fsync always, everysec and no in turn: a crash of
// kvd alone, the machine staying up, loses nothing acknowledged in any
// mode, since every mode writes the log before it answers). After each restart: every
// acknowledged write is there (or the one in flight replaced it), no value
// that was never written appears, every transaction is all or nothing,
// the bank total is conserved, and every value any client read is still
// there (or was overwritten by its writer later).
func TestKillNineKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	m := &killModel{keys: map[string]*ownedKey{}}
	const rounds = 8
	for round := range rounds {
		loops := []string{"-1", "0"}[round%2]
		mode := []string{"always", "everysec", "no"}[round%3]
		p := startKVD(t, "-dir", dir, "-fsync", mode, "-event-loops", loops)
		if round > 0 {
			checkRecovered(t, round, p.addr, m)
		} else {
			c := dial(t, p.addr)
			mustDo(t, c, "START")
			for i := range bankAccounts {
				mustDo(t, c, fmt.Sprintf("PUT acct%d %d", i, bankTotal/bankAccounts))
			}
			if r := mustDo(t, c, "COMMIT"); !r.OK() {
				t.Fatalf("bank setup: %v", r)
			}
		}
		m.reads = map[string]int{}
		for _, o := range m.keys {
			o.ops = nil
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); killWriter(p.addr, round, w, m, stop) }()
		}
		for w := range 2 {
			wg.Add(2)
			go func() { defer wg.Done(); killBank(p.addr, round*10+w, stop) }()
			go func() { defer wg.Done(); killReader(p.addr, round*10+w, m, stop) }()
		}
		time.Sleep(time.Duration(700+rand.IntN(800)) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		close(stop)
		wg.Wait()
	}
	p := startKVD(t, "-dir", dir)
	checkRecovered(t, rounds, p.addr, m)
	acked := 0
	for _, o := range m.keys {
		if o.last.seq > 0 {
			acked++
		}
	}
	if acked == 0 {
		t.Fatal("no write was acknowledged: the test checked nothing")
	}
	t.Logf("%d keys written over %d kills", acked, rounds)
}

// killWriter puts and deletes its own keys and commits transaction pairs
// until the connection breaks.
func killWriter(addr string, round, w int, m *killModel, stop <-chan struct{}) {
	c, err := kvclient.Dial(addr)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	r := rand.New(rand.NewPCG(uint64(round), uint64(w)))
	for seq := round*1_000_000 + 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		if r.IntN(5) == 0 {
			// A transaction writing two keys with one value.
			prefix := fmt.Sprintf("t%d-%d", w, r.IntN(10))
			a, b := m.key(prefix+"a"), m.key(prefix+"b")
			op := keyOp{seq: seq, val: strconv.Itoa(seq)}
			a.pending, b.pending = &op, &op
			a.ops, b.ops = append(a.ops, op), append(b.ops, op)
			m.mu.Lock()
			m.pairs = append(m.pairs, prefix)
			m.mu.Unlock()
			if c.Start() != nil || c.Put(prefix+"a", op.val) != nil || c.Put(prefix+"b", op.val) != nil || c.Commit() != nil {
				return
			}
			a.last, b.last, a.pending, b.pending = op, op, nil, nil
			continue
		}
		k := fmt.Sprintf("w%d-%d", w, r.IntN(30))
		o := m.key(k)
		op := keyOp{seq: seq, val: strconv.Itoa(seq), del: r.IntN(4) == 0}
		o.pending = &op
		o.ops = append(o.ops, op)
		if op.del {
			if err := c.Del(k); err != nil && !errors.Is(err, kvclient.ErrNotFound) {
				return
			}
		} else if c.Put(k, op.val) != nil {
			return
		}
		o.last, o.pending = op, nil
	}
}

// killBank moves money between accounts in transactions.
func killBank(addr string, seed int, stop <-chan struct{}) {
	c, err := kvclient.Dial(addr)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	for {
		select {
		case <-stop:
			return
		default:
		}
		a, b := r.IntN(bankAccounts), r.IntN(bankAccounts)
		if a == b {
			continue
		}
		if c.Start() != nil {
			return
		}
		va, err1 := c.Get(fmt.Sprint("acct", a))
		vb, err2 := c.Get(fmt.Sprint("acct", b))
		if err1 != nil || err2 != nil {
			return
		}
		na, _ := strconv.Atoi(va)
		nb, _ := strconv.Atoi(vb)
		amt := r.IntN(10)
		if c.Put(fmt.Sprint("acct", a), strconv.Itoa(na-amt)) != nil || c.Put(fmt.Sprint("acct", b), strconv.Itoa(nb+amt)) != nil {
			return
		}
		if err := c.Commit(); err != nil && !errors.Is(err, kvclient.ErrConflict) {
			return
		}
	}
}

// killReader reads other clients' keys and records the newest value it saw.
func killReader(addr string, seed int, m *killModel, stop <-chan struct{}) {
	c, err := kvclient.Dial(addr)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	r := rand.New(rand.NewPCG(uint64(seed), 9))
	for {
		select {
		case <-stop:
			return
		default:
		}
		k := fmt.Sprintf("w%d-%d", r.IntN(4), r.IntN(30))
		v, err := c.Get(k)
		if errors.Is(err, kvclient.ErrNotFound) {
			continue
		}
		if err != nil {
			return
		}
		seq, _ := strconv.Atoi(v)
		m.mu.Lock()
		if seq > m.reads[k] {
			m.reads[k] = seq
		}
		m.mu.Unlock()
	}
}

// checkRecovered compares the restarted server with the model, then makes
// the recovered state the model's.
func checkRecovered(t *testing.T, round int, addr string, m *killModel) {
	t.Helper()
	checkRecoveredWith(t, t.Errorf, round, addr, m)
}

// checkRecoveredWith is checkRecovered reporting to errorf.
func checkRecoveredWith(t *testing.T, errorf func(string, ...any), round int, addr string, m *killModel) {
	t.Helper()
	c := dial(t, addr)
	get := func(k string) (string, bool) {
		v, err := c.Get(k)
		if errors.Is(err, kvclient.ErrNotFound) {
			return "", false
		}
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		return v, true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, o := range m.keys {
		v, ok := get(k)
		state := keyOp{del: true}
		if ok {
			seq, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("round %d: %s = %q, never written", round, k, v)
			}
			state = keyOp{seq: seq, val: v}
		}
		matches := func(op keyOp) bool { return op.del == state.del && (op.del || op.val == state.val) }
		if !matches(o.last) && (o.pending == nil || !matches(*o.pending)) {
			errorf("round %d: %s recovered as %+v; last acknowledged %+v, in flight %v", round, k, state, o.last, o.pending)
		}
		if read := m.reads[k]; read > 0 {
			ok := false
			for _, op := range o.ops {
				if op.seq >= read && matches(op) {
					ok = true
				}
			}
			if !ok && !(state.seq >= read && !state.del) {
				errorf("round %d: a client read %s = %d, but it recovered as %+v", round, k, read, state)
			}
		}
		if o.pending != nil && matches(*o.pending) {
			o.last = *o.pending
		}
		o.pending = nil
	}
	for _, prefix := range m.pairs {
		a, aok := get(prefix + "a")
		b, bok := get(prefix + "b")
		if a != b || aok != bok {
			errorf("round %d: transaction pair %s recovered half applied: %q/%v, %q/%v", round, prefix, a, aok, b, bok)
		}
	}
	sum := 0
	for i := range bankAccounts {
		v, ok := get(fmt.Sprint("acct", i))
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			errorf("round %d: account %d = %q, %v", round, i, v, ok)
		}
		sum += n
	}
	if sum != bankTotal {
		errorf("round %d: bank total %d, want %d", round, sum, bankTotal)
	}
}

// TestKillNineCheckCatchesLostData shows the check failing on a broken
// "recovery" that loses the data: the server restarted on an empty
// directory.
func TestKillNineCheckCatchesLostData(t *testing.T) {
	m := &killModel{keys: map[string]*ownedKey{}}
	p := startKVD(t, "-dir", t.TempDir(), "-fsync", "always")
	c := dial(t, p.addr)
	mustDo(t, c, "START")
	for i := range bankAccounts {
		mustDo(t, c, fmt.Sprintf("PUT acct%d %d", i, bankTotal/bankAccounts))
	}
	mustDo(t, c, "COMMIT")
	m.reads = map[string]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); killWriter(p.addr, 0, 0, m, stop) }()
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	close(stop)
	<-done
	lost := startKVD(t, "-dir", t.TempDir()) // the bug: the data is gone
	var failures []string
	checkRecoveredWith(t, func(f string, a ...any) { failures = append(failures, fmt.Sprintf(f, a...)) }, 1, lost.addr, m)
	if len(failures) == 0 {
		t.Fatal("the check accepted a restart that lost every write")
	}
	t.Logf("the check reported %d failures, e.g. %s", len(failures), failures[0])
}
