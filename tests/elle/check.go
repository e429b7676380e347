package elle

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Anomaly is one violation found in a history.
type Anomaly struct {
	// Kind is G0, G1a, G1b, G1c, G-single, G2 (optionally with a "-realtime"
	// suffix), incompatible-order, garbage, duplicate, duplicate-append or
	// internal.
	Kind string
	// Msg explains the anomaly; for cycles it lists the edges and the
	// transactions.
	Msg string
}

// Report is the result of Check.
type Report struct {
	Anomalies []Anomaly
	// Committed is the number of committed (ok) transactions checked.
	Committed int
	// Edges counts dependency edges by kind (ww, wr, rw, rt).
	Edges map[string]int
}

// Valid reports whether no anomaly was found.
func (r *Report) Valid() bool { return len(r.Anomalies) == 0 }

// Kinds returns the distinct anomaly kinds found, sorted.
func (r *Report) Kinds() []string {
	var ks []string
	for _, a := range r.Anomalies {
		if !slices.Contains(ks, a.Kind) {
			ks = append(ks, a.Kind)
		}
	}
	sort.Strings(ks)
	return ks
}

// String renders the report, at most 5 anomalies of each kind.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d committed txns, edges %v, %d anomalies %v", r.Committed, r.Edges, len(r.Anomalies), r.Kinds())
	shown := map[string]int{}
	for _, a := range r.Anomalies {
		if shown[a.Kind]++; shown[a.Kind] > 5 {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s\n%s", a.Kind, a.Msg)
	}
	return b.String()
}

// Options tune Check.
type Options struct {
	// RealTime adds real-time edges (T1 completed before T2 was invoked),
	// checking strict serializability rather than serializability.
	RealTime bool
}

type edgeKind uint8

const (
	ww edgeKind = 1 << iota
	wr
	rw
	rt
)

var edgeNames = []struct {
	k    edgeKind
	name string
}{{ww, "ww"}, {wr, "wr"}, {rw, "rw"}, {rt, "rt"}}

type edgeInfo struct {
	kinds edgeKind
	key   map[edgeKind]string // a key that explains each kind
}

type writeRef struct {
	txn   int // index into history
	last  bool
	index int
}

type checker struct {
	h      []Txn
	rep    *Report
	writes map[string]map[int]writeRef // key -> value -> writer
	order  map[string][]int            // key -> version order (longest read)
	adj    []map[int]*edgeInfo
}

// Check analyses a history and reports every anomaly it finds. Transaction
// IDs need not be dense; the history order does not matter.
func Check(history []Txn, opts Options) *Report {
	c := &checker{
		h:      history,
		rep:    &Report{Edges: map[string]int{}},
		writes: map[string]map[int]writeRef{},
		order:  map[string][]int{},
		adj:    make([]map[int]*edgeInfo, len(history)),
	}
	for i := range history {
		if history[i].Status == OK {
			c.rep.Committed++
		}
	}
	c.indexWrites()
	c.internal()
	c.versionOrders()
	c.readAnomalies()
	c.listAnomalies()
	c.buildGraph()
	c.listEdges()
	if opts.RealTime {
		c.realtimeEdges()
	}
	c.cycles(opts.RealTime)
	return c.rep
}

func (c *checker) add(kind, format string, args ...any) {
	c.rep.Anomalies = append(c.rep.Anomalies, Anomaly{Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) indexWrites() {
	for i := range c.h {
		t := &c.h[i]
		lastIdx := map[string]int{}
		for j, m := range t.Mops {
			if m.Kind == Append {
				lastIdx[m.Key] = j
			}
		}
		for j, m := range t.Mops {
			if m.Kind != Append {
				continue
			}
			ws := c.writes[m.Key]
			if ws == nil {
				ws = map[int]writeRef{}
				c.writes[m.Key] = ws
			}
			if prev, dup := ws[m.Value]; dup {
				c.add("duplicate-append", "value %d appended to %s twice:\n  %s\n  %s", m.Value, m.Key, &c.h[prev.txn], t)
				continue
			}
			ws[m.Value] = writeRef{txn: i, last: lastIdx[m.Key] == j, index: j}
		}
	}
}

// internal checks that each committed transaction's reads agree with its own
// earlier reads and appends.
func (c *checker) internal() {
	for i := range c.h {
		t := &c.h[i]
		if t.Status != OK {
			continue
		}
		known := map[string][]int{} // key -> list the txn must see now
		blind := map[string][]int{} // appends before any read of the key
		isKnown := map[string]bool{}
		for _, m := range t.Mops {
			switch m.Kind {
			case Append:
				if isKnown[m.Key] {
					known[m.Key] = append(slices.Clone(known[m.Key]), m.Value)
				} else {
					blind[m.Key] = append(blind[m.Key], m.Value)
				}
			case Read:
				switch {
				case isKnown[m.Key] && !slices.Equal(known[m.Key], m.List):
					c.add("internal", "%s\n  read of %s saw %s, expected %s from its own earlier operations",
						t, m.Key, FormatList(m.List), FormatList(known[m.Key]))
				case !isKnown[m.Key] && len(blind[m.Key]) > 0:
					suffix := blind[m.Key]
					if len(m.List) < len(suffix) || !slices.Equal(m.List[len(m.List)-len(suffix):], suffix) {
						c.add("internal", "%s\n  read of %s saw %s, which does not end with its own appends %s",
							t, m.Key, FormatList(m.List), FormatList(suffix))
					}
				}
				known[m.Key] = m.List
				isKnown[m.Key] = true
			}
		}
	}
}

func isPrefix(p, l []int) bool { return len(p) <= len(l) && slices.Equal(p, l[:len(p)]) }

// versionOrders takes the longest committed read of each key as its version
// order and reports reads that are not prefixes of it.
func (c *checker) versionOrders() {
	type obs struct {
		list []int
		txn  int
	}
	reads := map[string][]obs{}
	for i := range c.h {
		if c.h[i].Status != OK {
			continue
		}
		state := map[string][]int{}
		for _, m := range c.h[i].Mops {
			switch m.Kind {
			case Read:
				reads[m.Key] = append(reads[m.Key], obs{m.List, i})
				state[m.Key] = m.List
			case Append:
				if l, ok := state[m.Key]; ok {
					state[m.Key] = append(slices.Clone(l), m.Value)
				}
			}
		}
		// The state a committed transaction installed, when it read the
		// key first: the workload writes whole lists, so this is a version
		// of the key as much as any read.
		for k, l := range state {
			reads[k] = append(reads[k], obs{l, i})
		}
	}
	keys := make([]string, 0, len(reads))
	for k := range reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rs := reads[k]
		longest := rs[0]
		for _, r := range rs[1:] {
			if len(r.list) > len(longest.list) {
				longest = r
			}
		}
		c.order[k] = longest.list
		reported := 0
		for _, r := range rs {
			if !isPrefix(r.list, longest.list) && reported < 3 {
				reported++
				c.add("incompatible-order", "key %s: reads %s and %s are not prefixes of one another (a lost or reordered write):\n  %s\n  %s",
					k, FormatList(r.list), FormatList(longest.list), &c.h[r.txn], &c.h[longest.txn])
			}
		}
	}
}

func (c *checker) readAnomalies() {
	for i := range c.h {
		t := &c.h[i]
		if t.Status != OK {
			continue
		}
		for _, m := range t.Mops {
			if m.Kind != Read {
				continue
			}
			seen := map[int]bool{}
			for _, v := range m.List {
				if seen[v] {
					c.add("duplicate", "%s\n  read of %s contains %d twice", t, m.Key, v)
				}
				seen[v] = true
				w, ok := c.writes[m.Key][v]
				switch {
				case !ok:
					c.add("garbage", "%s\n  read of %s contains %d, which no transaction appended", t, m.Key, v)
				case c.h[w.txn].Status == Fail:
					c.add("G1a", "%s\n  read of %s saw %d, appended by the aborted\n  %s", t, m.Key, v, &c.h[w.txn])
				}
			}
			if len(m.List) == 0 {
				continue
			}
			v := m.List[len(m.List)-1]
			if w, ok := c.writes[m.Key][v]; ok && w.txn != i && !w.last {
				c.add("G1b", "%s\n  read of %s ended at %d, an intermediate append of\n  %s", t, m.Key, v, &c.h[w.txn])
			}
		}
	}
}

// listAnomalies checks listings: every listed key must have been created
// by a transaction that did not abort.
func (c *checker) listAnomalies() {
	for i := range c.h {
		t := &c.h[i]
		if t.Status != OK {
			continue
		}
		for _, m := range t.Mops {
			if m.Kind != List {
				continue
			}
			for _, k := range m.Keys {
				switch _, ok := c.firstWriter(k); {
				case !strings.HasPrefix(k, m.Key):
					c.add("garbage", "%s\n  listing of %s* returned %s, outside the prefix", t, m.Key, k)
				case len(c.writes[k]) == 0:
					c.add("garbage", "%s\n  listing of %s* returned %s, which no transaction created", t, m.Key, k)
				case !ok && c.allFailed(k):
					c.add("G1a", "%s\n  listing of %s* returned %s, created only by aborted transactions", t, m.Key, k)
				}
			}
		}
	}
}

// allFailed reports whether every transaction that appended to key aborted.
func (c *checker) allFailed(key string) bool {
	for _, w := range c.writes[key] {
		if c.h[w.txn].Status != Fail {
			return false
		}
	}
	return true
}

// firstWriter returns the transaction that created key: the writer of the
// first value in its version order, or its only writer when no read
// revealed the order.
func (c *checker) firstWriter(key string) (int, bool) {
	if order := c.order[key]; len(order) > 0 {
		return c.writer(key, order[0])
	}
	if ws := c.writes[key]; len(ws) == 1 {
		for _, w := range ws {
			if c.node(w.txn) {
				return w.txn, true
			}
		}
	}
	return 0, false
}

// listEdges adds the dependencies a listing reveals. A key under the
// prefix that the listing did not return was in its initial state: the
// lister comes before the key's creator (rw, an anti-dependency on the
// predicate: a phantom if the cycle closes). A key it returned was created
// before: creator -> lister (wr).
func (c *checker) listEdges() {
	byPrefix := map[string][]string{}
	for i := range c.h {
		if c.h[i].Status != OK {
			continue
		}
		for _, m := range c.h[i].Mops {
			if m.Kind != List {
				continue
			}
			keys, ok := byPrefix[m.Key]
			if !ok {
				for k := range c.writes {
					if strings.HasPrefix(k, m.Key) {
						keys = append(keys, k)
					}
				}
				sort.Strings(keys)
				byPrefix[m.Key] = keys
			}
			listed := map[string]bool{}
			for _, k := range m.Keys {
				listed[k] = true
			}
			for _, k := range keys {
				w, ok := c.firstWriter(k)
				switch {
				case !ok:
				case listed[k]:
					c.edge(w, i, wr, k)
				default:
					c.edge(i, w, rw, k)
				}
			}
		}
	}
}

func (c *checker) edge(from, to int, k edgeKind, key string) {
	if from == to {
		return
	}
	if c.adj[from] == nil {
		c.adj[from] = map[int]*edgeInfo{}
	}
	e := c.adj[from][to]
	if e == nil {
		e = &edgeInfo{key: map[edgeKind]string{}}
		c.adj[from][to] = e
	}
	if e.kinds&k == 0 {
		for _, n := range edgeNames {
			if n.k == k {
				c.rep.Edges[n.name]++
			}
		}
	}
	e.kinds |= k
	if _, ok := e.key[k]; !ok {
		e.key[k] = key
	}
}

// node reports whether a transaction takes part in the dependency graph:
// committed, or of unknown outcome (its writes may have been observed).
func (c *checker) node(i int) bool { return c.h[i].Status != Fail }

func (c *checker) writer(key string, v int) (int, bool) {
	w, ok := c.writes[key][v]
	if !ok || !c.node(w.txn) {
		return 0, false
	}
	return w.txn, true
}

func (c *checker) buildGraph() {
	for k, order := range c.order {
		for j := 0; j+1 < len(order); j++ {
			a, ok1 := c.writer(k, order[j])
			b, ok2 := c.writer(k, order[j+1])
			if ok1 && ok2 {
				c.edge(a, b, ww, k)
			}
		}
	}
	for i := range c.h {
		if c.h[i].Status != OK {
			continue
		}
		for _, m := range c.h[i].Mops {
			if m.Kind != Read {
				continue
			}
			if n := len(m.List); n > 0 {
				if w, ok := c.writer(m.Key, m.List[n-1]); ok {
					c.edge(w, i, wr, m.Key)
				}
			}
			order := c.order[m.Key]
			if isPrefix(m.List, order) && len(m.List) < len(order) {
				if w, ok := c.writer(m.Key, order[len(m.List)]); ok {
					c.edge(i, w, rw, m.Key)
				}
			}
		}
	}
}

// realtimeEdges adds T1 -rt-> T2 when T1 completed before T2 was invoked,
// keeping only edges to the frontier of latest completions (the rest follow
// by transitivity).
func (c *checker) realtimeEdges() {
	type event struct {
		t      int64
		invoke bool
		txn    int
	}
	var evs []event
	for i := range c.h {
		if !c.node(i) {
			continue
		}
		evs = append(evs, event{c.h[i].Invoke, true, i})
		if c.h[i].Status == OK {
			evs = append(evs, event{c.h[i].Complete, false, i})
		}
	}
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].t != evs[b].t {
			return evs[a].t < evs[b].t
		}
		return evs[a].invoke && !evs[b].invoke // closed intervals: equal times overlap
	})
	frontier := map[int]bool{}
	preds := map[int][]int{}
	for _, e := range evs {
		if e.invoke {
			for f := range frontier {
				c.edge(f, e.txn, rt, "")
				preds[e.txn] = append(preds[e.txn], f)
			}
			continue
		}
		for _, p := range preds[e.txn] {
			delete(frontier, p)
		}
		delete(preds, e.txn)
		frontier[e.txn] = true
	}
}

// sccs returns the strongly connected components with more than one node of
// the graph restricted to edges of the given kinds (iterative Tarjan).
func (c *checker) sccs(mask edgeKind) [][]int {
	n := len(c.h)
	index := make([]int, n)
	low := make([]int, n)
	on := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var out [][]int
	var st []int
	next := 0
	type frame struct {
		v     int
		succs []int
		i     int
	}
	succ := func(v int) []int {
		var s []int
		for w, e := range c.adj[v] {
			if e.kinds&mask != 0 {
				s = append(s, w)
			}
		}
		sort.Ints(s)
		return s
	}
	for root := 0; root < n; root++ {
		if index[root] >= 0 || !c.node(root) {
			continue
		}
		call := []frame{{v: root, succs: succ(root)}}
		index[root], low[root] = next, next
		next++
		st = append(st, root)
		on[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(f.succs) {
				w := f.succs[f.i]
				f.i++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					st = append(st, w)
					on[w] = true
					call = append(call, frame{v: w, succs: succ(w)})
				} else if on[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := st[len(st)-1]
					st = st[:len(st)-1]
					on[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				if len(comp) > 1 {
					sort.Ints(comp)
					out = append(out, comp)
				}
			}
		}
	}
	return out
}

// shortestCycle finds a shortest cycle through start inside comp using
// edges of the given kinds.
func (c *checker) shortestCycle(start int, in map[int]bool, mask edgeKind) []int {
	prev := map[int]int{start: -1}
	queue := []int{start}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		succs := make([]int, 0, len(c.adj[v]))
		for w := range c.adj[v] {
			succs = append(succs, w)
		}
		sort.Ints(succs)
		for _, w := range succs {
			if c.adj[v][w].kinds&mask == 0 || !in[w] {
				continue
			}
			if w == start {
				path := []int{v}
				for p := prev[v]; p >= 0; p = prev[p] {
					path = append(path, p)
				}
				slices.Reverse(path)
				return path
			}
			if _, seen := prev[w]; !seen {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return nil
}

func (c *checker) cycles(realtime bool) {
	reported := map[int]bool{}
	masks := []edgeKind{ww | wr | rw}
	if realtime {
		masks = append(masks, ww|wr|rw|rt)
	}
	for _, mask := range masks {
		for _, comp := range c.sccs(mask) {
			if slices.ContainsFunc(comp, func(v int) bool { return reported[v] }) {
				continue
			}
			in := map[int]bool{}
			for _, v := range comp {
				in[v] = true
				reported[v] = true
			}
			var best []int
			for i, v := range comp {
				if i >= 8 {
					break
				}
				if cyc := c.shortestCycle(v, in, mask); cyc != nil && (best == nil || len(cyc) < len(best)) {
					best = cyc
				}
			}
			c.reportCycle(best, mask, len(comp))
		}
	}
}

func (c *checker) reportCycle(cyc []int, mask edgeKind, compSize int) {
	counts := map[edgeKind]int{}
	var b strings.Builder
	fmt.Fprintf(&b, "cycle of %d transactions (in a strongly connected component of %d):\n  ", len(cyc), compSize)
	for i, v := range cyc {
		w := cyc[(i+1)%len(cyc)]
		e := c.adj[v][w]
		// Name each step by its most damning kind: ww, then wr, rw, rt.
		var kind edgeKind
		var name string
		for _, n := range edgeNames {
			if e.kinds&mask&n.k != 0 {
				kind, name = n.k, n.name
				break
			}
		}
		counts[kind]++
		if key := e.key[kind]; key != "" {
			name += "(" + key + ")"
		}
		fmt.Fprintf(&b, "T%d -%s-> ", c.h[v].ID, name)
	}
	fmt.Fprintf(&b, "T%d", c.h[cyc[0]].ID)
	for _, v := range cyc {
		fmt.Fprintf(&b, "\n  %s", &c.h[v])
	}
	var kind string
	switch {
	case counts[rw] == 0 && counts[wr] == 0:
		kind = "G0"
	case counts[rw] == 0:
		kind = "G1c"
	case counts[rw] == 1:
		kind = "G-single"
	default:
		kind = "G2"
	}
	if counts[rt] > 0 {
		kind += "-realtime"
	}
	c.add(kind, "%s", b.String())
}
