package kvstore

// StoreOption configures a Store; pass StoreOptions to New (or Open).
//
// Like the Server's Options, StoreOptions never fail: a value out of range
// keeps the default (see each option).
type StoreOption func(*storeConfig)

// storeConfig is what the StoreOptions set.
type storeConfig struct{}

func defaultStoreConfig() storeConfig { return storeConfig{} }
