package kvstore

import (
	"errors"
	"syscall"
	"testing"
	"unsafe"
)

// TestPutRefusesValuesOf4GiB passes a value of 4 GiB + 5 bytes to Store.Put
// and Txn.Put. The value lives in a reserved, never touched mapping, so the
// test costs no memory unless the store copies it, which it must not: it
// must refuse the value from its length alone.
func TestPutRefusesValuesOf4GiB(t *testing.T) {
	if unsafe.Sizeof(0) < 8 {
		t.Skip("a 4 GiB length needs a 64-bit int")
	}
	const size = MaxValueBytes + 6
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		t.Skipf("cannot reserve %d bytes of address space: %v", size, err)
	}
	defer syscall.Munmap(mem)
	huge := unsafe.String(&mem[0], size)

	s := New()
	if err := s.Put("k", huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put of a %d-byte value: %v, want ErrTooLarge", len(huge), err)
	}
	if _, ok := s.Get("k"); ok || s.Len() != 0 {
		t.Fatal("the refused Put left the key behind")
	}
	tx := s.Begin()
	if err := tx.Put("k", huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Txn.Put of a %d-byte value: %v, want ErrTooLarge", len(huge), err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("k"); ok {
		t.Fatal("the refused Txn.Put was committed")
	}
}
