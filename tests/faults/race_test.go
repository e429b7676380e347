//go:build race

package faults

// raceEnabled tells tests that the race detector slows every access down,
// so that they scale their workloads and bounds.
const raceEnabled = true
