package linearizability

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kvd-dev/kvstore/tests/kvclient"
)

// Config shapes a random single-key workload.
type Config struct {
	Clients      int           // concurrent connections
	Keys         int           // distinct keys (few keys: more contention)
	OpsPerClient int           // upper bound on operations per client
	Duration     time.Duration // upper bound on wall time
	Seed         uint64
	KeyPrefix    string
	// Pipeline is how many requests a client sends before reading their
	// responses (0 or 1: one at a time). The operations of a batch are
	// all invoked when the batch is sent.
	Pipeline int
	// MaxPadding, when positive, appends up to that many random bytes
	// (spaces, tabs, quotes, backslashes, HTML and non-ASCII characters)
	// to every PUT value, so that values must round-trip byte for byte.
	MaxPadding int
}

// paddingAlphabet avoids only what a value cannot hold (newlines) or would
// lose (a carriage return before the newline).
var paddingAlphabet = []rune("abcxyz019 \t\"\\<>&{}[],:é€😀")

func padding(rng *rand.Rand, limit int) string {
	if limit <= 0 {
		return ""
	}
	n := rng.IntN(limit + 1)
	b := make([]rune, n)
	for i := range b {
		b[i] = paddingAlphabet[rng.IntN(len(paddingAlphabet))]
	}
	return string(b)
}

// Run drives cfg.Clients concurrent clients against addr, each issuing random
// GET/PUT/DEL requests (PUT values are unique), and records the history. A
// client whose connection breaks records its last operation as Unknown and
// stops. Run returns the first unexpected error (an error response other
// than not-found, or a protocol violation) together with the history.
func Run(addr string, cfg Config) (*Recorder, error) {
	rec := NewRecorder()
	deadline := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	errs := make([]error, cfg.Clients)
	for c := range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = runClient(addr, cfg, c, rec, deadline)
		}()
	}
	wg.Wait()
	return rec, errors.Join(errs...)
}

func runClient(addr string, cfg Config, id int, rec *Recorder, deadline time.Time) error {
	cl, err := kvclient.Dial(addr)
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(id)))
	depth := max(cfg.Pipeline, 1)
	type op struct {
		in  Input
		req string
	}
	batch := make([]op, 0, depth)
	for i := 0; i < cfg.OpsPerClient && time.Now().Before(deadline); {
		batch = batch[:0]
		for ; len(batch) < depth && i < cfg.OpsPerClient; i++ {
			in := Input{Key: fmt.Sprintf("%sk%d", cfg.KeyPrefix, rng.IntN(cfg.Keys))}
			var req string
			switch p := rng.IntN(10); {
			case p < 5:
				in.Kind = OpGet
				req = "GET " + in.Key
			case p < 9:
				in.Kind = OpPut
				in.Value = fmt.Sprintf("c%d-%d", id, i) + padding(rng, cfg.MaxPadding)
				req = "PUT " + in.Key + " " + in.Value
			default:
				in.Kind = OpDel
				req = "DEL " + in.Key
			}
			batch = append(batch, op{in, req})
		}
		call := rec.Now()
		var err error
		for _, o := range batch {
			if err == nil {
				err = cl.Send(o.req)
			}
		}
		if err == nil {
			err = cl.Flush()
		}
		for _, o := range batch {
			var resp kvclient.Response
			if err == nil {
				resp, err = cl.Recv()
			}
			ret := rec.Now()
			if err != nil {
				rec.Add(id, o.in, call, Output{Unknown: true}, ret)
				continue
			}
			var out Output
			switch {
			case resp.OK():
				out.Found = true
				if o.in.Kind == OpGet {
					if resp.Result == nil {
						return fmt.Errorf("%s: Ok without result", o.req)
					}
					out.Value = *resp.Result
				}
			case resp.IsNotFound() && o.in.Kind != OpPut:
			default:
				return fmt.Errorf("%s: unexpected response %s", o.req, resp)
			}
			rec.Add(id, o.in, call, out, ret)
		}
		if err != nil {
			if errors.Is(err, kvclient.ErrProtocol) {
				return err
			}
			return nil
		}
	}
	return nil
}
