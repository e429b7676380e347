package kvstore

import "errors"

// Errors returned by Store and Txn. Test for them with errors.Is: some are
// returned wrapped with more context.
var (
	// ErrConflict is returned by the outermost Txn.Commit when another commit
	// changed a key that the transaction read after its snapshot was taken.
	// The transaction has been rolled back and ended; nothing of it applied.
	// Store.Update returns it, wrapped, when every retry conflicted.
	ErrConflict = errors.New("transaction conflict")

	// ErrTxnClosed is returned by any write, Begin, Commit or Rollback on a
	// Txn whose outermost level has already ended.
	ErrTxnClosed = errors.New("transaction closed")

	// ErrTxnTooDeep is returned by Txn.Begin when the transaction already has
	// MaxTxnDepth levels.
	ErrTxnTooDeep = errors.New("transaction nesting too deep")

	// ErrTxnReadOnly is returned by Txn.Put and Txn.Delete on the read-only
	// transaction that Store.View passes to its function.
	ErrTxnReadOnly = errors.New("transaction is read-only")

	// ErrTooLarge is returned, wrapped, by Store.Put and Txn.Put for a key
	// longer than MaxKeyBytes or a value longer than MaxValueBytes. Nothing
	// is applied or buffered.
	ErrTooLarge = errors.New("key or value too large")

	// ErrMemoryLimit is returned, wrapped, by writes that would take a
	// store created WithMaxMemory past its limit: Store.Put, Txn.Put and the
	// outermost Txn.Commit of a transaction that puts. Nothing of the write
	// is applied (a failed outermost Commit ends the transaction, as a
	// conflict does). Reads and deletes keep working; after deletes have
	// freed memory, writes succeed again.
	ErrMemoryLimit = errors.New("out of memory")
)
