package kvstore_test

import (
	"errors"
	"fmt"

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
	// Reads and deletes keep working; deleting makes room again.
	s.Delete("key0")
	fmt.Println(s.Put("another", val))
	// Output:
	// true true
	// <nil>
}
