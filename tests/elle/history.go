// Package elle is a transactional history checker in the style of Jepsen's
// Elle, for list-append workloads.
//
// Every key holds a list of integers; a transaction is a sequence of
// micro-operations, each a read of a key's whole list or an append of a
// value that is unique per key. Because appends are unique and lists only
// grow, every read reveals a prefix of the key's version order, which lets
// the checker recover, from the observations alone:
//
//   - the version order of each key (all reads must be prefixes of one
//     another, else "incompatible-order");
//   - per-read anomalies: reads of aborted writes (G1a), reads of a
//     transaction's intermediate state (G1b), values nobody wrote
//     ("garbage"), duplicated values ("duplicate"), and reads inside a
//     transaction that contradict its own earlier reads and writes
//     ("internal");
//   - the dependency graph between committed transactions, with
//     write-write (ww), write-read (wr) and read-write anti-dependency (rw)
//     edges, plus real-time (rt) edges for strict serializability. Any cycle
//     is an anomaly, named after Adya: G0 (ww only), G1c (ww and wr),
//     G-single (exactly one rw), G2 (more than one rw); with "-realtime"
//     appended when the cycle needs a real-time edge.
//
// kvd has no append command, so the workload in this package implements
// "append v to k" as GET k followed by PUT k <list with v added> inside the
// same transaction, and records that GET as an ordinary read. Since the
// whole list is written, the list a committed transaction installed (its
// last read of a key plus its later appends) is an observed version too,
// which lets the checker see lost updates even when no later read does.
package elle

import (
	"fmt"
	"strconv"
	"strings"
)

// MopKind is the kind of a micro-operation.
type MopKind int

// Micro-operation kinds. A List is a predicate read: the keys under a
// prefix (KEYS <prefix>*), which tells for every key with that prefix
// whether it existed in the snapshot: absent means its initial, empty
// version; present, some version after its first append.
const (
	Read MopKind = iota
	Append
	List
)

// Mop is one micro-operation of a transaction.
type Mop struct {
	Kind  MopKind
	Key   string   // Read, Append: the key; List: the prefix
	Value int      // Append: the appended value
	List  []int    // Read: the observed list (nil and empty both mean empty)
	Keys  []string // List: the keys listed
}

// L is shorthand for a listing micro-operation under prefix that saw keys.
func L(prefix string, keys ...string) Mop {
	return Mop{Kind: List, Key: prefix, Keys: append([]string{}, keys...)}
}

// R is shorthand for a read micro-operation that observed list.
func R(key string, list ...int) Mop {
	return Mop{Kind: Read, Key: key, List: append([]int{}, list...)}
}

// A is shorthand for an append micro-operation.
func A(key string, v int) Mop { return Mop{Kind: Append, Key: key, Value: v} }

// String renders a micro-operation like Elle does: [:r x [1 2]] [:append x 3].
func (m Mop) String() string {
	if m.Kind == List {
		if n := len(m.Keys); n > 6 {
			return fmt.Sprintf("[list %s* ...(%d more) %s]", m.Key, n-4, strings.Join(m.Keys[n-4:], " "))
		}
		return fmt.Sprintf("[list %s* %s]", m.Key, strings.Join(m.Keys, " "))
	}
	if m.Kind == Append {
		return fmt.Sprintf("[append %s %d]", m.Key, m.Value)
	}
	if n := len(m.List); n > 8 {
		return fmt.Sprintf("[r %s ...(%d more),%s]", m.Key, n-6, FormatList(m.List[n-6:]))
	}
	return fmt.Sprintf("[r %s %s]", m.Key, FormatList(m.List))
}

// Status is the outcome of a transaction as the client saw it.
type Status int

// Transaction outcomes.
const (
	// OK: committed.
	OK Status = iota
	// Fail: definitely not committed (aborted, for example by a conflict).
	Fail
	// Info: unknown (for example the connection broke during COMMIT).
	Info
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Fail:
		return "fail"
	}
	return "info"
}

// Txn is one transaction of a history.
type Txn struct {
	ID       int
	Process  int
	Status   Status
	Mops     []Mop
	Invoke   int64 // when the client sent START
	Complete int64 // when the client received the COMMIT response
}

// String renders a transaction for reports.
func (t *Txn) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "T%d (process %d, %s, [%d..%d]):", t.ID, t.Process, t.Status, t.Invoke, t.Complete)
	for _, m := range t.Mops {
		b.WriteString(" ")
		b.WriteString(m.String())
	}
	return b.String()
}

// FormatList renders a list the way it is stored in kvd: comma-separated
// decimal integers, "" for the empty list.
func FormatList(l []int) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// ParseList is the inverse of FormatList.
func ParseList(s string) ([]int, error) {
	if s == "" {
		return []int{}, nil
	}
	parts := strings.Split(s, ",")
	out := make([]int, len(parts))
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("elle: bad list %q: %v", s, err)
		}
		out[i] = v
	}
	return out, nil
}
