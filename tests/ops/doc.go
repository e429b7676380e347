// Package ops tests what operators see of a running kvd: the real binary
// (cmd/kvd, built as a tool of this module) with -metrics-addr, scraped
// over HTTP and parsed with the Prometheus text parser
// (github.com/prometheus/common/expfmt), and its /debug/pprof/ pages.
package ops
