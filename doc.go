// Package kvstore is an in-memory key-value store with serializable,
// nestable transactions, and the server and protocol layers of kvd, the TCP
// datastore built on it.
//
// # The model
//
// Every commit gets a timestamp from a counter, one higher than the last. A
// key keeps a short chain of versions, each tagged with the timestamp of the
// commit that wrote it (a deletion is a version too, a tombstone). A
// transaction takes a snapshot when it begins: it remembers the last
// published timestamp, its read timestamp, and from then on reads, for each
// key, the newest version committed at or before it. Commits by others that
// publish later are invisible to it, however long it stays open, so it reads
// one consistent state of the store.
//
// A transaction's own writes are buffered in the transaction and seen only by
// it: Get looks at them first, then at the snapshot. Nested levels (Txn.Begin)
// each have a buffer of their own; rolling a level back drops its buffer,
// committing it merges the buffer into the enclosing level. Nothing is
// published until the outermost Commit.
//
// # When a transaction conflicts
//
// The outermost Commit installs all of its writes under one new timestamp in
// one short critical section, with the affected parts of the store locked, so
// every reader sees either none or all of them. Before it does, it checks the
// keys the transaction read (Get, and Delete, which reads whether a key
// exists): if any of them has a version newer than the transaction's snapshot,
// someone changed what the transaction saw, and the commit fails with
// ErrConflict, applying nothing. This makes every transaction serializable,
// in an order that agrees with real time: each one behaves as if it ran
// alone at the instant it committed. Blind writes (Put without reading the
// key) and read-only transactions never conflict.
//
// Store.Put and Store.Delete are commits of their own, with a timestamp, so
// they too make transactions that read the key conflict. Store.Get reads the
// newest committed version; it never waits for an open transaction and
// allocates nothing.
//
// # Expiry and listing
//
// A key may have a time to live (Store.PutWithTTL, Store.Expire, the same
// on Txn). Its expiry behaves as a Delete committed at the instant it
// expires: reads compare the expiry time with the clock (Store.Get) or with
// the instant the snapshot was taken (Txn), and a transaction that read a
// version which expires before its commit conflicts. A goroutine of the
// store reclaims expired keys in small batches through the commit path;
// Store.Close stops it.
//
// Store.Ascend and Txn.Ascend list the keys with a prefix in byte order,
// from a snapshot (plus, in a transaction, its own writes). In a
// transaction a listing is a read of the range it covered: the commit
// conflicts if another commit created, changed or deleted a key in it (no
// phantoms). Each shard keeps an ordered set of its keys for this, built
// by the store's first listing.
//
// # Memory
//
// A version older than a key's newest one is kept only while some open
// transaction's snapshot can see it. Each kept version belongs to the newest
// snapshot that sees it (no later snapshot ever can); when a snapshot ends,
// whichever it is, the keys whose versions it owned are trimmed again, so
// history goes as soon as nobody can read it. That trimming runs in batches
// of a few hundred keys, letting go of the commit lock in between, so ending
// a transaction that pinned millions of versions never holds up other
// clients for more than a moment; more than one batch is trimmed by a
// goroutine of the store, so Commit and Rollback return at once.
//
// A deleted key leaves a tombstone only while a snapshot older than the
// deletion is open (a transaction on it that read the key as missing must
// still conflict at commit), and each shard keeps at most a few dozen such
// tombstones. Past that, the key is removed at once and its group of keys
// in the shard is marked: a transaction older than the mark that read a
// missing key of that group conflicts at commit, a rare false conflict that
// keeps memory bounded however long a transaction stays open.
//
// Tables shrink when deletions leave them sparse, and the bookkeeping maps
// are dropped when they empty. A transaction left open still pins the
// versions it can see; end every transaction with Commit or Rollback
// (Store.Update and Store.View do that for you).
//
// Store.MemoryUsage reports what the store holds: records, slot arrays,
// history and its bookkeeping, and open transactions' buffers, each at the
// size the Go allocator gives it. A store created WithMaxMemory refuses
// writes that would take that past its limit (ErrMemoryLimit), applying
// nothing; reads and deletes keep working, so deleting makes room again.
// Keys and values longer than MaxKeyBytes and MaxValueBytes (4 GiB - 1)
// are refused with ErrTooLarge.
//
// # Serving it
//
// The same package holds kvd's network layers, each knowing only the one
// below it: ParseRequest and AppendResponse (protocol.go) turn request
// lines into Requests and responses into JSON lines, without allocating;
// a Session (session.go) is one client's state, its transaction stack,
// and executes Requests against a Store; a Server (server.go) accepts TCP
// connections and moves bytes between them and their Sessions, from epoll
// event loops on Linux or a goroutine per connection elsewhere. Configure
// it with Options (WithAddr, WithMaxClients, ...) and run it with a
// context; Shutdown works like net/http's.
package kvstore
