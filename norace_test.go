//go:build !race

package kvstore

// raceEnabled tells tests that the race detector slows every access down,
// so that they scale their workloads.
const raceEnabled = false
