package kvstore

import (
	"encoding/json"
	"runtime/metrics"
	"time"
)

// Stats is a snapshot of a server's figures, the answer to STATS and the
// source an embedder (cmd/kvd) wires to a metrics library. Counters count
// since the server (or, for a Session without a Server, the process)
// started. New figures are added as fields with a json tag: STATS encodes
// the whole struct, so nothing else has to change.
type Stats struct {
	// Keys is the number of live keys in the store.
	Keys int64 `json:"keys"`
	// Connections is the number of connected clients.
	Connections int64 `json:"connections"`
	// Commands is the number of requests executed (parsed ones; a line
	// that fails to parse is not counted).
	Commands uint64 `json:"commands"`
	// Commits counts applied writes: outermost COMMITs that succeeded,
	// and PUTs and DELs outside a transaction that changed the store.
	Commits uint64 `json:"commits"`
	// Conflicts counts writes refused because another client changed
	// what they depended on (the client must retry).
	Conflicts uint64 `json:"conflicts"`
	// UptimeSeconds is how long the server has run.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Memory is what the store's data holds, in bytes (Store.MemoryUsage).
	Memory int64 `json:"memory"`
	// HeapBytes is the Go heap in use by live and not yet swept objects.
	HeapBytes uint64 `json:"heap_bytes"`
	// CommandsByType counts requests by command name ("GET", "PUT", ...);
	// their sum is Commands. STATS leaves it out (its answer is an object
	// of numbers); metrics exporters use it.
	CommandsByType map[string]uint64 `json:"-"`
	// RuntimeBytes is all the memory the Go runtime has mapped (close to
	// the process's resident set when the OS has not reclaimed any).
	RuntimeBytes uint64 `json:"runtime_bytes"`
	// Errors is the number of Error responses sent, whatever their
	// cause (a parse error, a missing key, a refused client...).
	Errors uint64 `json:"errors"`
	// ErrorsByKind counts Error responses by kind, one per stable mesg
	// prefix (the names ErrorKinds returns; every kind is present, zero
	// or not); their sum is Errors. STATS leaves it out.
	ErrorsByKind map[string]uint64 `json:"-"`
	// BytesIn and BytesOut are the bytes read from clients and written to
	// them (requests and responses; inside TLS, the plain text).
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Latency is the histogram of the time the server took to answer
	// requests; its count is Commands (every executed request is
	// measured), once the responses have been written. STATS leaves it
	// out; a Session without a Server does not measure it.
	Latency LatencyHistogram `json:"-"`
	// DurabilityStats are the commit log's and snapshots' figures; nil
	// (and absent from STATS) for a store in memory only. Its fields are
	// promoted: check for nil before reading st.LogBytes.
	*DurabilityStats
}

// processStart is the origin of UptimeSeconds for a Session without a
// Server.
var processStart = time.Now()

// runtimeMemory returns the heap in use and all the memory the Go runtime
// has mapped, without stopping the world (runtime.ReadMemStats would).
func runtimeMemory() (heap, total uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		heap = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		total = s[1].Value.Uint64()
	}
	return heap, total
}

// storeStats is what a Session without a Server answers STATS with: the
// store's figures and this session's own counters.
func (s *Session) storeStats() Stats {
	st := Stats{
		Keys:          int64(s.store.Len()),
		Connections:   1,
		UptimeSeconds: time.Since(processStart).Seconds(),
		Memory:        s.store.MemoryUsage(),
	}
	st.addCounts(s.counts)
	st.HeapBytes, st.RuntimeBytes = runtimeMemory()
	st.DurabilityStats = s.store.DurabilityStats()
	return st
}

// addCounts adds the counters of c to st: requests, by type, commits,
// conflicts, errors, by kind, and bytes.
func (st *Stats) addCounts(c *sessionCounts) {
	if st.CommandsByType == nil {
		st.CommandsByType = make(map[string]uint64, len(c.byCmd))
	}
	for cmd := range c.byCmd {
		if cmd == int(CmdNone) {
			continue
		}
		n := c.byCmd[cmd].Load()
		st.Commands += n
		st.CommandsByType[commandNames[cmd]] += n
	}
	if st.ErrorsByKind == nil {
		st.ErrorsByKind = make(map[string]uint64, numErrKinds)
	}
	for k := range c.errs {
		n := c.errs[k].Load()
		st.Errors += n
		st.ErrorsByKind[errKinds[k].name] += n
	}
	st.Commits += c.commits.Load()
	st.Conflicts += c.conflicts.Load()
	st.BytesIn += c.bytesIn.Load()
	st.BytesOut += c.bytesOut.Load()
}

// appendStats appends {"status":"Ok","result":{...}}, the figures as a
// JSON object of numbers.
func appendStats(dst []byte, st Stats) []byte {
	obj, err := json.Marshal(st)
	if err != nil { // a struct of numbers always encodes
		return appendError(dst, "stats: ", err.Error())
	}
	dst = append(dst, `{"status":"Ok","result":`...)
	dst = append(dst, obj...)
	return append(dst, "}\n"...)
}

// Stats returns the server's figures now. It is cheap enough to call on
// every metrics scrape: it sums the per-connection counters (each written
// by its own connection only) and the event loops' latency histograms
// under the server's lock, and takes no lock on the request path.
func (s *Server) Stats() Stats {
	st := Stats{
		Keys:          int64(s.store.Len()),
		UptimeSeconds: time.Since(s.started).Seconds(),
		Memory:        s.store.MemoryUsage(),
	}
	s.mu.Lock()
	st.Connections = int64(len(s.conns))
	st.addCounts(&s.closedCounts)
	s.closedLatency.addTo(&st.Latency)
	for c := range s.conns {
		if c.loop == nil { // served by a goroutine: counters of its own
			st.addCounts(c.sess.counts)
		}
		if c.latency != nil { // served by a goroutine
			c.latency.addTo(&st.Latency)
		}
	}
	for _, l := range s.loops {
		st.addCounts(&l.counts)
		l.latency.addTo(&st.Latency)
	}
	s.mu.Unlock()
	st.HeapBytes, st.RuntimeBytes = runtimeMemory()
	st.DurabilityStats = s.store.DurabilityStats()
	return st
}

// addClosed keeps the counters of a connection that has ended. It is
// called with s.mu held.
func (s *Server) addClosed(c *serverConn) {
	if c.loop != nil {
		return // its counters are its loop's, which Stats keeps reading
	}
	sc := c.sess.counts
	for i := range sc.byCmd {
		s.closedCounts.byCmd[i].Add(sc.byCmd[i].Load())
	}
	for i := range sc.errs {
		s.closedCounts.errs[i].Add(sc.errs[i].Load())
	}
	s.closedCounts.commits.Add(sc.commits.Load())
	s.closedCounts.conflicts.Add(sc.conflicts.Load())
	s.closedCounts.bytesIn.Add(sc.bytesIn.Load())
	s.closedCounts.bytesOut.Add(sc.bytesOut.Load())
	if c.latency != nil {
		s.closedLatency.merge(c.latency)
		c.latency = nil
	}
}
