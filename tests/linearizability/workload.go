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
	for i := 0; i < cfg.OpsPerClient && time.Now().Before(deadline); i++ {
		in := Input{Key: fmt.Sprintf("%sk%d", cfg.KeyPrefix, rng.IntN(cfg.Keys))}
		var req string
		switch p := rng.IntN(10); {
		case p < 5:
			in.Kind = OpGet
			req = "GET " + in.Key
		case p < 9:
			in.Kind = OpPut
			in.Value = fmt.Sprintf("c%d-%d", id, i)
			req = "PUT " + in.Key + " " + in.Value
		default:
			in.Kind = OpDel
			req = "DEL " + in.Key
		}
		call := rec.Now()
		resp, err := cl.Do(req)
		ret := rec.Now()
		if err != nil {
			rec.Add(id, in, call, Output{Unknown: true}, ret)
			if errors.Is(err, kvclient.ErrProtocol) {
				return err
			}
			return nil
		}
		var out Output
		switch {
		case resp.OK():
			out.Found = true
			if in.Kind == OpGet {
				if resp.Result == nil {
					return fmt.Errorf("%s: Ok without result", req)
				}
				out.Value = *resp.Result
			}
		case resp.IsNotFound() && in.Kind != OpPut:
		default:
			rec.Add(id, in, call, Output{Unknown: true}, ret)
			return fmt.Errorf("%s: unexpected response %s", req, resp)
		}
		rec.Add(id, in, call, out, ret)
	}
	return nil
}
