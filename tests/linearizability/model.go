// Package linearizability checks histories of single-key GET/PUT/DEL
// operations against a sequential key-value model with porcupine, and runs
// such workloads against a kvd server over TCP.
package linearizability

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is the kind of a single-key operation.
type OpKind int

// The operations of the model.
const (
	OpGet OpKind = iota
	OpPut
	OpDel
)

// Input is an operation as invoked.
type Input struct {
	Kind  OpKind
	Key   string
	Value string // PUT only
}

// Output is the observed result of an operation.
type Output struct {
	// Found: GET returned a value; DEL deleted an existing key. Ignored for
	// PUT.
	Found bool
	// Value is what GET returned.
	Value string
	// Unknown: the client never learned the outcome (the connection broke);
	// the operation may or may not have taken effect.
	Unknown bool
}

// state is the value of one key: present or not.
type state struct {
	present bool
	value   string
}

// Model is the sequential specification of one kvd key, partitioned by key:
// GET returns the value or not-found, PUT stores, DEL removes and reports
// whether the key existed.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(Input).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return state{} },
	Step: func(st, in, out interface{}) (bool, interface{}) {
		s, i, o := st.(state), in.(Input), out.(Output)
		switch i.Kind {
		case OpGet:
			if o.Unknown {
				return true, s
			}
			if o.Found != s.present {
				return false, s
			}
			return !o.Found || o.Value == s.value, s
		case OpPut:
			return true, state{present: true, value: i.Value}
		case OpDel:
			if o.Unknown {
				// Deleting a missing key changes nothing, so "it happened"
				// covers both outcomes.
				return true, state{}
			}
			return o.Found == s.present, state{}
		}
		return false, s
	},
	Equal: func(a, b interface{}) bool { return a.(state) == b.(state) },
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(Input), out.(Output)
		var res string
		switch {
		case o.Unknown:
			res = "?"
		case i.Kind == OpPut:
			res = "ok"
		case i.Kind == OpGet && o.Found:
			res = fmt.Sprintf("%q", o.Value)
		case o.Found:
			res = "ok"
		default:
			res = "not found"
		}
		switch i.Kind {
		case OpGet:
			return fmt.Sprintf("get(%s) -> %s", i.Key, res)
		case OpPut:
			return fmt.Sprintf("put(%s, %q) -> %s", i.Key, i.Value, res)
		default:
			return fmt.Sprintf("del(%s) -> %s", i.Key, res)
		}
	},
	DescribeState: func(st interface{}) string {
		s := st.(state)
		if !s.present {
			return "<absent>"
		}
		return fmt.Sprintf("%q", s.value)
	},
}

// Recorder collects a concurrent history. Timestamps come from one
// monotonic clock shared by all clients.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewRecorder starts an empty history.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now returns the current timestamp of the history's clock.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add records one completed (or unknown) operation. For an Unknown output,
// the return time is pushed to the end of time, as porcupine expects.
func (r *Recorder) Add(client int, in Input, call int64, out Output, ret int64) {
	if out.Unknown {
		ret = 1<<62 - 1
	}
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.mu.Unlock()
}

// History returns a copy of the recorded operations.
func (r *Recorder) History() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// Result is the verdict on a history.
type Result struct {
	Verdict porcupine.CheckResult
	// VisualizationPath is the HTML file written when the history is not
	// linearizable (or the check timed out); "" otherwise.
	VisualizationPath string
}

// Check runs porcupine on history. When the history is not linearizable (or
// the check times out) it writes porcupine's HTML visualization to a
// temporary file and reports its path.
func Check(history []porcupine.Operation, timeout time.Duration) (Result, error) {
	verdict, info := porcupine.CheckOperationsVerbose(Model, history, timeout)
	res := Result{Verdict: verdict}
	if verdict == porcupine.Ok {
		return res, nil
	}
	f, err := os.CreateTemp("", "kvd-linearizability-*.html")
	if err != nil {
		return res, err
	}
	defer f.Close()
	if err := porcupine.Visualize(Model, info, f); err != nil {
		return res, err
	}
	res.VisualizationPath = f.Name()
	return res, nil
}

// Describe summarizes a history for logs: ops per kind.
func Describe(history []porcupine.Operation) string {
	n := map[OpKind]int{}
	found := 0
	for _, op := range history {
		in := op.Input.(Input)
		n[in.Kind]++
		if in.Kind == OpGet && op.Output.(Output).Found {
			found++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d ops: %d GET (%d found), %d PUT, %d DEL", len(history), n[OpGet], found, n[OpPut], n[OpDel])
	return b.String()
}
