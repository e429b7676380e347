package linearizability

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// Expiry: single-key GET/PUT/DEL/EXPIRE histories checked against a model
// that knows the clock. Every operation carries its invocation and return
// times on the wall clock the server also reads (unix nanoseconds), and
// the model keeps, per key, besides the value:
//
//   - an interval [DeadlineLo, DeadlineHi] known to hold the key's expiry
//     instant: EXPIRE k s took effect at some instant p within the call, so
//     the key expires at p+s;
//   - a lower bound T on the current instant: operations take effect in
//     history order, each within its call.
//
// A GET that finds the key must have taken effect before its expiry (some
// instant >= max(T, call) below DeadlineHi), and narrows DeadlineLo; a GET
// that misses a key with a deadline must have taken effect after it
// (DeadlineLo <= return), and from then on the key is gone. The bounds only
// ever keep what the observations prove, so a linearizable history always
// passes; a key served after its deadline, or gone before it, fails.

// ExpiryInput is an operation as invoked: OpGet, OpPut, OpDel or OpExpire.
type ExpiryInput struct {
	Kind    OpKind
	Key     string
	Value   string // PUT
	Seconds int64  // EXPIRE
	Call    int64  // unix nanoseconds
}

// OpExpire is EXPIRE <key> <seconds>: found means the key existed.
const OpExpire OpKind = 100

// ExpiryOutput is the observed result.
type ExpiryOutput struct {
	Found  bool // GET: returned a value; DEL, EXPIRE: the key existed
	Value  string
	Return int64 // unix nanoseconds
}

// expiryState is one key in the model.
type expiryState struct {
	Present                bool
	Value                  string
	DeadlineLo, DeadlineHi int64 // 0, 0: no time to live
	T                      int64
}

// clockSlack covers the difference between the instant the server read
// its clock and the instants the client read its own around the call.
const clockSlack = int64(2 * time.Millisecond)

// liveAt reports whether the key can still be present at some instant in
// [lo, hi], and the state after observing it present at the earliest such.
func (s expiryState) observePresent(lo int64) (bool, expiryState) {
	if !s.Present {
		return false, s
	}
	if s.DeadlineHi != 0 {
		if lo >= s.DeadlineHi+clockSlack {
			return false, s
		}
		s.DeadlineLo = max(s.DeadlineLo, lo+1-clockSlack)
	}
	s.T = lo
	return true, s
}

// observeAbsent is the state after observing the key missing by hi.
func (s expiryState) observeAbsent(lo, hi int64) (bool, expiryState) {
	switch {
	case !s.Present:
		s.T = lo
		return true, s
	case s.DeadlineHi == 0 || s.DeadlineLo > hi+clockSlack:
		return false, s
	}
	return true, expiryState{T: max(lo, s.DeadlineLo-clockSlack)}
}

// ExpiryModel is the sequential specification with expiry, partitioned by
// key.
var ExpiryModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(ExpiryInput).Key
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
	Init: func() interface{} { return expiryState{} },
	Step: func(st, in, out interface{}) (bool, interface{}) {
		s, i, o := st.(expiryState), in.(ExpiryInput), out.(ExpiryOutput)
		lo, hi := max(s.T, i.Call), o.Return
		if lo > hi+clockSlack {
			return false, s
		}
		switch i.Kind {
		case OpPut:
			return true, expiryState{Present: true, Value: i.Value, T: lo}
		case OpGet, OpDel, OpExpire:
			if !o.Found {
				return s.observeAbsent(lo, hi)
			}
			ok, next := s.observePresent(lo)
			if !ok || (i.Kind == OpGet && o.Value != s.Value) {
				return false, s
			}
			switch i.Kind {
			case OpDel:
				return true, expiryState{T: lo}
			case OpExpire:
				secs := i.Seconds * int64(time.Second)
				next.DeadlineLo, next.DeadlineHi = lo+secs, hi+secs
			}
			return true, next
		}
		return false, s
	},
	Equal: func(a, b interface{}) bool { return a.(expiryState) == b.(expiryState) },
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(ExpiryInput), out.(ExpiryOutput)
		res := "not found"
		switch {
		case i.Kind == OpPut, o.Found && i.Kind != OpGet:
			res = "ok"
		case o.Found:
			res = fmt.Sprintf("%q", o.Value)
		}
		at := fmt.Sprintf(" [%.3f s, %.3f s]", float64(i.Call%1e11)/1e9, float64(o.Return%1e11)/1e9)
		switch i.Kind {
		case OpGet:
			return fmt.Sprintf("get(%s) -> %s%s", i.Key, res, at)
		case OpPut:
			return fmt.Sprintf("put(%s, %q) -> %s%s", i.Key, i.Value, res, at)
		case OpExpire:
			return fmt.Sprintf("expire(%s, %d) -> %s%s", i.Key, i.Seconds, res, at)
		}
		return fmt.Sprintf("del(%s) -> %s%s", i.Key, res, at)
	},
	DescribeState: func(st interface{}) string {
		s := st.(expiryState)
		if !s.Present {
			return "<absent>"
		}
		if s.DeadlineHi == 0 {
			return fmt.Sprintf("%q", s.Value)
		}
		return fmt.Sprintf("%q expiring in [%.3f s, %.3f s]", s.Value, float64(s.DeadlineLo%1e11)/1e9, float64(s.DeadlineHi%1e11)/1e9)
	},
}

// ExpiryConfig shapes an expiry workload.
type ExpiryConfig struct {
	Clients   int
	Keys      int
	Duration  time.Duration
	Seed      uint64
	KeyPrefix string
}

// RunExpiry drives clients doing random GET, PUT, DEL and EXPIRE (1 second)
// on a few keys for cfg.Duration, mostly GETs, paced so that keys expire
// during the run, and returns the history for CheckExpiry.
func RunExpiry(addr string, cfg ExpiryConfig) ([]porcupine.Operation, error) {
	var mu sync.Mutex
	var ops []porcupine.Operation
	deadline := time.Now().Add(cfg.Duration)
	errs := make([]error, cfg.Clients)
	var wg sync.WaitGroup
	for id := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kvclient.Dial(addr)
			if err != nil {
				errs[id] = err
				return
			}
			defer cl.Close()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(id)))
			var then *ExpiryInput // an EXPIRE to send right after a PUT
			for n := 0; time.Now().Before(deadline); n++ {
				in := ExpiryInput{Key: fmt.Sprintf("%se%d", cfg.KeyPrefix, rng.IntN(cfg.Keys))}
				var req string
				// Writes are rare (a PUT and EXPIRE pair about every 2 s
				// per key), so that keys live out their 1 s time to live
				// under many GETs.
				switch r := rng.IntN(1000); {
				case then != nil:
					in, then = *then, nil
					req = "EXPIRE " + in.Key + " 1"
				case r < 4:
					in.Kind, in.Value = OpPut, fmt.Sprintf("c%d-%d", id, n)
					req = "PUT " + in.Key + " " + in.Value
					then = &ExpiryInput{Kind: OpExpire, Key: in.Key, Seconds: 1}
				case r < 5:
					in.Kind, req = OpDel, "DEL "+in.Key
				default:
					in.Kind, req = OpGet, "GET "+in.Key
				}
				in.Call = time.Now().UnixNano()
				resp, err := cl.Do(req)
				ret := time.Now().UnixNano()
				if err != nil {
					errs[id] = err
					return
				}
				out := ExpiryOutput{Found: resp.OK(), Return: ret}
				if !resp.OK() && !resp.IsNotFound() {
					errs[id] = fmt.Errorf("%s: %s", req, resp)
					return
				}
				if in.Kind == OpGet && resp.OK() && resp.Result != nil {
					out.Value = *resp.Result
				}
				mu.Lock()
				ops = append(ops, porcupine.Operation{ClientId: id, Input: in, Call: in.Call, Output: out, Return: ret})
				mu.Unlock()
				time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return ops, errors.Join(errs...)
}

// CheckExpiry runs porcupine with ExpiryModel.
func CheckExpiry(history []porcupine.Operation, timeout time.Duration) porcupine.CheckResult {
	return porcupine.CheckOperationsTimeout(ExpiryModel, history, timeout)
}
