// Package txn holds the transaction-safety suite: scenarios that drive a
// real kvd server over TCP with concurrent clients and check, each in its
// own way, that committed transactions are atomic, isolated and
// serializable (docs/PROTOCOL.md, "Transactions"). Each scenario is also run through a
// deliberately broken proxy (package proxy) to show that it detects the
// breakage.
package txn
