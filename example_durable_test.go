package kvstore_test

import (
	"fmt"
	"log"
	"os"

	"github.com/kvd-dev/kvstore"
)

// A durable store keeps its data in a directory: reopened, it has what
// was committed.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "kvd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := kvstore.Open(dir, kvstore.WithSync(kvstore.SyncAlways))
	if err != nil {
		log.Fatal(err)
	}
	s.Put("greeting", "hello") // on disk when Put returns
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	s, err = kvstore.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	v, _ := s.Get("greeting")
	fmt.Println(v)
	// Output: hello
}

// Compact writes a snapshot and drops the log it covers.
func ExampleStore_Compact() {
	dir, _ := os.MkdirTemp("", "kvd-example")
	defer os.RemoveAll(dir)
	s, err := kvstore.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		s.Put(fmt.Sprint("key", i%10), fmt.Sprint(i))
	}
	fmt.Println(s.Compact(), s.Len())
	// Output: <nil> 10
}
