// Package faults holds the fault suite: clients that vanish mid-line and
// mid-transaction, slow clients, clients that never read, Shutdown under
// heavy pipelined load, the kvd binary's prompt exit on SIGTERM, attacks
// on the client-memory budget, 10,000 concurrent connections, a
// transaction left idle while others create and delete keys, and kill -9
// of a durable kvd under load with restarts on the same directory, each
// against a
// real kvd server on loopback, each ending with the goroutine count back at
// its baseline.
package faults
