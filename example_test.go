package kvstore_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kvd-dev/kvstore"
)

func Example() {
	s := kvstore.New()
	s.Put("greeting", "hello")
	if v, ok := s.Get("greeting"); ok {
		fmt.Println(v)
	}
	existed, _ := s.Delete("greeting")
	fmt.Println(existed, s.Len())
	// Output:
	// hello
	// true 0
}

func ExampleStore_Update() {
	s := kvstore.New()
	s.Put("alice", "100")
	s.Put("bob", "0")

	// Move 30 from alice to bob. Update commits, retrying fn if another
	// commit changed alice or bob in between.
	err := s.Update(func(tx *kvstore.Txn) error {
		a, _ := tx.Get("alice")
		b, _ := tx.Get("bob")
		var x, y int
		fmt.Sscan(a, &x)
		fmt.Sscan(b, &y)
		if x < 30 {
			return errors.New("insufficient funds") // rolls back
		}
		tx.Put("alice", fmt.Sprint(x-30))
		return tx.Put("bob", fmt.Sprint(y+30))
	})
	fmt.Println(err)

	s.View(func(tx *kvstore.Txn) error {
		a, _ := tx.Get("alice")
		b, _ := tx.Get("bob")
		fmt.Println(a, b)
		return nil
	})
	// Output:
	// <nil>
	// 70 30
}

func ExampleTxn_Begin() {
	s := kvstore.New()
	tx := s.Begin()
	tx.Put("a", "1")

	tx.Begin() // a nested level
	tx.Put("a", "2")
	tx.Put("b", "2")
	v, _ := tx.Get("a")
	fmt.Println("inside the nested level:", v)
	tx.Rollback() // discards only the nested level's writes

	v, _ = tx.Get("a")
	_, ok := tx.Get("b")
	fmt.Println("after its rollback:", v, ok)

	tx.Commit() // the outermost level: publishes a=1
	v, _ = s.Get("a")
	fmt.Println("committed:", v, tx.Depth())
	// Output:
	// inside the nested level: 2
	// after its rollback: 1 false
	// committed: 1 0
}

func ExampleTxn_Commit_conflict() {
	s := kvstore.New()
	s.Put("seats", "1")

	tx := s.Begin()
	seats, _ := tx.Get("seats") // the snapshot says one seat is left
	s.Put("seats", "0")         // someone else takes it meanwhile
	if seats == "1" {
		tx.Put("seats", "0")
		tx.Put("booking", "me")
	}
	err := tx.Commit()
	fmt.Println(errors.Is(err, kvstore.ErrConflict))
	_, booked := s.Get("booking")
	fmt.Println(booked)
	// Output:
	// true
	// false
}

func ExampleWithMaxMemory() {
	s := kvstore.New(kvstore.WithMaxMemory(1 << 20)) // 1 MiB
	val := string(make([]byte, 1000))
	n := 0
	for ; ; n++ {
		if err := s.Put(fmt.Sprint("key", n), val); err != nil {
			fmt.Println(errors.Is(err, kvstore.ErrMemoryLimit), s.MemoryUsage() <= 1<<20)
			break
		}
	}
	// Reads and deletes keep working; deleting makes room again (two
	// keys: how close to the limit the refused write came depends on
	// where the hash seed put the keys, and one key's room may fall a
	// few bytes short of a longer key).
	s.Delete("key0")
	s.Delete("key1")
	fmt.Println(s.Put("another", val))
	// Output:
	// true true
	// <nil>
}

func ExampleStore_Ascend() {
	s := kvstore.New()
	s.Put("user:bob", "2")
	s.Put("user:alice", "1")
	s.Put("group:admins", "alice")
	for key, value := range s.Ascend("user:") {
		fmt.Println(key, value)
	}
	// Output:
	// user:alice 1
	// user:bob 2
}

func ExampleStore_AscendAfter() {
	s := kvstore.New()
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		s.Put(k, "")
	}
	// List by pages of two: each page starts after the previous page's
	// last key.
	after := ""
	for {
		var page []string
		for key := range s.AscendAfter("k", after) {
			page = append(page, key)
			if len(page) == 2 {
				break
			}
		}
		fmt.Println(page)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	// Output:
	// [k1 k2]
	// [k3 k4]
	// [k5]
}

func ExampleTxn_Ascend() {
	s := kvstore.New()
	s.Put("oncall:alice", "")
	s.Put("oncall:bob", "")

	// Each transaction counts who is on call and, if someone else is,
	// takes itself off. Listing reads the whole prefix, so the second
	// commit conflicts: at least one person stays on call.
	leave := func(tx *kvstore.Txn, me string) {
		n := 0
		for range tx.Ascend("oncall:") {
			n++
		}
		if n > 1 {
			tx.Delete("oncall:" + me)
		}
	}
	t1, t2 := s.Begin(), s.Begin()
	leave(t1, "alice")
	leave(t2, "bob")
	fmt.Println(t1.Commit())
	fmt.Println(errors.Is(t2.Commit(), kvstore.ErrConflict))
	// Output:
	// <nil>
	// true
}

func ExampleStore_PutWithTTL() {
	// A clock the example moves by hand (atomic: the store's active expiry
	// goroutine reads it too).
	var now atomic.Int64
	now.Store(time.Unix(1_700_000_000, 0).UnixNano())
	s := kvstore.New(kvstore.WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	defer s.Close()

	s.PutWithTTL("session:42", "alice", 30*time.Minute)
	ttl, _ := s.TTL("session:42")
	fmt.Println(ttl)

	now.Add(int64(30 * time.Minute)) // the key expires at this instant
	_, ok := s.Get("session:42")
	fmt.Println(ok)
	// Output:
	// 30m0s
	// false
}

func ExampleStore_Expire() {
	s := kvstore.New()
	defer s.Close()
	s.Put("cache:home", "<html>")
	ok, _ := s.Expire("cache:home", time.Hour)
	fmt.Println(ok)
	s.Persist("cache:home") // never mind
	ttl, _ := s.TTL("cache:home")
	fmt.Println(ttl) // 0: no time to live
	ok, _ = s.Expire("cache:missing", time.Hour)
	fmt.Println(ok)
	// Output:
	// true
	// 0s
	// false
}
