// Package bench compares the embedded kvstore.Store with the in-process
// stores a Go program would otherwise pick: a map guarded by a
// sync.RWMutex, sync.Map, hashicorp/go-memdb, tidwall/buntdb and
// dgraph-io/badger/v4 in in-memory mode.
//
// Every store is wrapped in the same small interface (KV, and Transactional
// for those with serializable transactions), so the benchmarks in this
// package run exactly the same work against each. The adapters are thin:
// each does what a careful user of that library would write, and nothing
// more. Run the comparison with
//
//	cd bench && go test -run '^$' -bench . -benchmem
package bench

import (
	"errors"
	"fmt"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	memdb "github.com/hashicorp/go-memdb"
	"github.com/kvd-dev/kvstore"
	"github.com/tidwall/buntdb"
)

// KV is a string key-value store under test. Its methods are safe for
// concurrent use.
type KV interface {
	// Name identifies the store in benchmark names.
	Name() string
	// Get returns the value of key and whether it exists.
	Get(key string) (value string, ok bool)
	// Put sets key to value.
	Put(key, value string)
	// Close releases the store's resources.
	Close() error
}

// Tx is the view of a store inside a transaction.
type Tx interface {
	// Get returns the value of key as the transaction sees it.
	Get(key string) (value string, ok bool, err error)
	// Put sets key to value when the transaction commits.
	Put(key, value string) error
}

// Transactional is a KV with serializable multi-key transactions.
type Transactional interface {
	KV
	// Update runs fn in a read-write transaction and commits it,
	// running fn again on a commit conflict until a commit succeeds (at
	// most MaxAttempts times). If fn returns an error nothing of that
	// attempt is applied and Update returns the error.
	Update(fn func(Tx) error) error
	// View runs fn in a read-only transaction over one snapshot.
	View(fn func(Tx) error) error
}

// MaxAttempts bounds how often Update runs fn when commits keep
// conflicting.
const MaxAttempts = 1000

// ErrReadOnly is returned by Tx.Put inside View.
var ErrReadOnly = errors.New("bench: read-only transaction")

// Factory makes a new, empty store of one kind.
type Factory struct {
	Name string
	// Transactional says whether the stores New makes implement
	// Transactional.
	Transactional bool
	New           func() (KV, error)
}

// Factories lists every store of the comparison, kvstore first.
func Factories() []Factory {
	return []Factory{
		{"kvstore", true, func() (KV, error) { return NewKVStore(), nil }},
		{"rwmap", true, func() (KV, error) { return NewRWMap(), nil }},
		{"syncmap", false, func() (KV, error) { return NewSyncMap(), nil }},
		{"memdb", true, func() (KV, error) { return NewMemDB() }},
		{"buntdb", true, func() (KV, error) { return NewBuntDB() }},
		{"badger", true, func() (KV, error) { return NewBadger() }},
	}
}

// retry runs attempt until it returns something other than a conflict.
func retry(isConflict func(error) bool, attempt func() error) error {
	var err error
	for i := 0; i < MaxAttempts; i++ {
		if err = attempt(); err == nil || !isConflict(err) {
			return err
		}
	}
	return fmt.Errorf("bench: gave up after %d conflicting attempts: %w", MaxAttempts, err)
}

// ---- kvstore ----

// KVStore adapts the embedded kvstore.Store.
type KVStore struct{ s *kvstore.Store }

// NewKVStore returns an empty kvstore.Store adapter.
func NewKVStore() *KVStore { return &KVStore{kvstore.New()} }

// Name implements KV.
func (*KVStore) Name() string { return "kvstore" }

// Get implements KV.
func (k *KVStore) Get(key string) (string, bool) { return k.s.Get(key) }

// Put implements KV.
func (k *KVStore) Put(key, value string) { k.s.Put(key, value) }

// Close implements KV.
func (*KVStore) Close() error { return nil }

// Update implements Transactional with Store.Update, which already retries
// conflicts a bounded number of times; more retries are added on top so
// every adapter has the same give-up point.
func (k *KVStore) Update(fn func(Tx) error) error {
	return retry(func(err error) bool { return errors.Is(err, kvstore.ErrConflict) }, func() error {
		return k.s.Update(func(t *kvstore.Txn) error { return fn(kvTx{t}) })
	})
}

// View implements Transactional.
func (k *KVStore) View(fn func(Tx) error) error {
	return k.s.View(func(t *kvstore.Txn) error { return fn(kvTx{t}) })
}

type kvTx struct{ t *kvstore.Txn }

func (t kvTx) Get(key string) (string, bool, error) {
	v, ok := t.t.Get(key)
	return v, ok, nil
}

func (t kvTx) Put(key, value string) error { return t.t.Put(key, value) }

// ---- map + sync.RWMutex ----

// RWMap is a map guarded by one sync.RWMutex. Its transactions hold the
// write lock for their whole run (readers: the read lock), which makes them
// trivially serializable; writes are buffered so that a failing
// transaction applies nothing.
type RWMap struct {
	mu sync.RWMutex
	m  map[string]string
	tx rwTx // reused by Update under mu
}

// NewRWMap returns an empty RWMap.
func NewRWMap() *RWMap {
	r := &RWMap{m: make(map[string]string)}
	r.tx.m = r
	return r
}

// Name implements KV.
func (*RWMap) Name() string { return "rwmap" }

// Get implements KV.
func (r *RWMap) Get(key string) (string, bool) {
	r.mu.RLock()
	v, ok := r.m[key]
	r.mu.RUnlock()
	return v, ok
}

// Put implements KV.
func (r *RWMap) Put(key, value string) {
	r.mu.Lock()
	r.m[key] = value
	r.mu.Unlock()
}

// Close implements KV.
func (*RWMap) Close() error { return nil }

// Update implements Transactional.
func (r *RWMap) Update(fn func(Tx) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &r.tx
	t.writes = t.writes[:0]
	t.readOnly = false
	if err := fn(t); err != nil {
		return err
	}
	for _, w := range t.writes {
		r.m[w.key] = w.value
	}
	return nil
}

// View implements Transactional.
func (r *RWMap) View(fn func(Tx) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return fn(&rwTx{m: r, readOnly: true})
}

type kvPair struct{ key, value string }

type rwTx struct {
	m        *RWMap
	writes   []kvPair
	readOnly bool
}

func (t *rwTx) Get(key string) (string, bool, error) {
	for i := len(t.writes) - 1; i >= 0; i-- {
		if t.writes[i].key == key {
			return t.writes[i].value, true, nil
		}
	}
	v, ok := t.m.m[key]
	return v, ok, nil
}

func (t *rwTx) Put(key, value string) error {
	if t.readOnly {
		return ErrReadOnly
	}
	t.writes = append(t.writes, kvPair{key, value})
	return nil
}

// ---- sync.Map ----

// SyncMap adapts sync.Map. It has no multi-key transactions, so it is not
// Transactional and sits out the transaction benchmarks.
type SyncMap struct{ m sync.Map }

// NewSyncMap returns an empty SyncMap.
func NewSyncMap() *SyncMap { return &SyncMap{} }

// Name implements KV.
func (*SyncMap) Name() string { return "syncmap" }

// Get implements KV.
func (s *SyncMap) Get(key string) (string, bool) {
	v, ok := s.m.Load(key)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// Put implements KV.
func (s *SyncMap) Put(key, value string) { s.m.Store(key, value) }

// Close implements KV.
func (*SyncMap) Close() error { return nil }

// ---- hashicorp/go-memdb ----

// MemDB adapts hashicorp/go-memdb: one table "kv" indexed by key. Readers
// work on an immutable radix-tree snapshot; writers are serialized by
// go-memdb's writer lock.
type MemDB struct{ db *memdb.MemDB }

type memEntry struct{ Key, Value string }

// NewMemDB returns an empty MemDB.
func NewMemDB() (*MemDB, error) {
	schema := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		"kv": {
			Name: "kv",
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	}}
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		return nil, err
	}
	return &MemDB{db}, nil
}

// Name implements KV.
func (*MemDB) Name() string { return "memdb" }

// Get implements KV.
func (m *MemDB) Get(key string) (string, bool) {
	txn := m.db.Txn(false)
	v, ok, _ := memTx{txn}.Get(key)
	txn.Abort()
	return v, ok
}

// Put implements KV.
func (m *MemDB) Put(key, value string) {
	txn := m.db.Txn(true)
	if err := txn.Insert("kv", &memEntry{key, value}); err != nil {
		txn.Abort()
		panic(err) // only a schema mistake can cause this
	}
	txn.Commit()
}

// Close implements KV.
func (*MemDB) Close() error { return nil }

// Update implements Transactional.
func (m *MemDB) Update(fn func(Tx) error) error {
	txn := m.db.Txn(true)
	if err := fn(memTx{txn}); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	return nil
}

// View implements Transactional.
func (m *MemDB) View(fn func(Tx) error) error {
	txn := m.db.Txn(false)
	defer txn.Abort()
	return fn(memTx{txn})
}

type memTx struct{ txn *memdb.Txn }

func (t memTx) Get(key string) (string, bool, error) {
	raw, err := t.txn.First("kv", "id", key)
	if err != nil || raw == nil {
		return "", false, err
	}
	return raw.(*memEntry).Value, true, nil
}

func (t memTx) Put(key, value string) error {
	return t.txn.Insert("kv", &memEntry{key, value})
}

// ---- tidwall/buntdb ----

// BuntDB adapts tidwall/buntdb opened on ":memory:". Its transactions are
// serialized: one writer or many readers at a time.
type BuntDB struct{ db *buntdb.DB }

// NewBuntDB returns an empty in-memory BuntDB.
func NewBuntDB() (*BuntDB, error) {
	db, err := buntdb.Open(":memory:")
	if err != nil {
		return nil, err
	}
	return &BuntDB{db}, nil
}

// Name implements KV.
func (*BuntDB) Name() string { return "buntdb" }

// Get implements KV.
func (b *BuntDB) Get(key string) (v string, ok bool) {
	_ = b.db.View(func(tx *buntdb.Tx) error {
		var err error
		v, ok, err = buntTx{tx}.Get(key)
		return err
	})
	return v, ok
}

// Put implements KV.
func (b *BuntDB) Put(key, value string) {
	_ = b.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(key, value, nil)
		return err
	})
}

// Close implements KV.
func (b *BuntDB) Close() error { return b.db.Close() }

// Update implements Transactional.
func (b *BuntDB) Update(fn func(Tx) error) error {
	return b.db.Update(func(tx *buntdb.Tx) error { return fn(buntTx{tx}) })
}

// View implements Transactional.
func (b *BuntDB) View(fn func(Tx) error) error {
	return b.db.View(func(tx *buntdb.Tx) error { return fn(buntTx{tx}) })
}

type buntTx struct{ tx *buntdb.Tx }

func (t buntTx) Get(key string) (string, bool, error) {
	v, err := t.tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (t buntTx) Put(key, value string) error {
	_, _, err := t.tx.Set(key, value, nil)
	if errors.Is(err, buntdb.ErrTxNotWritable) {
		return ErrReadOnly
	}
	return err
}

// ---- dgraph-io/badger/v4 ----

// Badger adapts dgraph-io/badger/v4 in in-memory mode. Its transactions
// are optimistic (serializable snapshot isolation): Update retries on
// badger.ErrConflict.
type Badger struct{ db *badger.DB }

// NewBadger opens an empty in-memory Badger with logging off.
func NewBadger() (*Badger, error) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	return &Badger{db}, nil
}

// Name implements KV.
func (*Badger) Name() string { return "badger" }

// Get implements KV.
func (b *Badger) Get(key string) (v string, ok bool) {
	_ = b.db.View(func(txn *badger.Txn) error {
		var err error
		v, ok, err = badgerTx{txn}.Get(key)
		return err
	})
	return v, ok
}

// Put implements KV. Blind single-key writes never conflict in Badger.
func (b *Badger) Put(key, value string) {
	_ = b.Update(func(t Tx) error { return t.Put(key, value) })
}

// Close implements KV.
func (b *Badger) Close() error { return b.db.Close() }

// Update implements Transactional.
func (b *Badger) Update(fn func(Tx) error) error {
	return retry(func(err error) bool { return errors.Is(err, badger.ErrConflict) }, func() error {
		return b.db.Update(func(txn *badger.Txn) error { return fn(badgerTx{txn}) })
	})
}

// View implements Transactional.
func (b *Badger) View(fn func(Tx) error) error {
	return b.db.View(func(txn *badger.Txn) error { return fn(badgerTx{txn}) })
}

type badgerTx struct{ txn *badger.Txn }

func (t badgerTx) Get(key string) (string, bool, error) {
	item, err := t.txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var v string
	err = item.Value(func(b []byte) error {
		v = string(b)
		return nil
	})
	return v, err == nil, err
}

func (t badgerTx) Put(key, value string) error {
	err := t.txn.Set([]byte(key), []byte(value))
	if errors.Is(err, badger.ErrReadOnlyTxn) {
		return ErrReadOnly
	}
	return err
}
