// Package ordered is an ordered set of strings for key listings: a sorted
// sequence of small sorted blocks (a two-level B+tree). Insert and Delete
// move at most one block's worth of string headers plus, rarely, the list
// of blocks; Seek finds a key with two binary searches.
//
// A Set is not safe for concurrent use: kvstore keeps one per shard,
// guarded by the shard's lock.
package ordered

import (
	"slices"
	"strings"
)

// blockSize is the most keys a block holds. A block splits in two halves
// when it overflows and merges with a neighbour when it falls below a
// quarter, so blocks stay between blockSize/4 and blockSize keys (except a
// lone block).
const blockSize = 128

// Set is an ordered set of strings. The zero value is empty and ready to
// use. A nil *Set reads as empty (Len, Has, Ascend, Delete).
type Set struct {
	blocks [][]string // each sorted and non-empty; blocks[i] < blocks[i+1]
	n      int
}

// Len returns the number of keys in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// locate returns the block that holds key or would hold it.
func (s *Set) locate(key string) int {
	// The first block whose last key is >= key; the last block if none.
	i, _ := slices.BinarySearchFunc(s.blocks, key, func(b []string, k string) int {
		return strings.Compare(b[len(b)-1], k)
	})
	if i == len(s.blocks) && i > 0 {
		i--
	}
	return i
}

// Insert adds key and reports whether it was not in the set. The set keeps
// key itself: the caller must not change its bytes (strings never change
// unless built with unsafe).
func (s *Set) Insert(key string) bool {
	if len(s.blocks) == 0 {
		s.blocks = append(s.blocks, []string{key})
		s.n = 1
		return true
	}
	bi := s.locate(key)
	b := s.blocks[bi]
	j, found := slices.BinarySearch(b, key)
	if found {
		return false
	}
	s.n++
	if len(b) < blockSize {
		s.blocks[bi] = slices.Insert(b, j, key)
		return true
	}
	if bi == len(s.blocks)-1 && j == len(b) {
		// Appending past the last key, as sequential loads do: start a
		// new block and leave this one full, so that such loads fill
		// every block.
		nb := make([]string, 1, blockSize)
		nb[0] = key
		s.blocks = append(s.blocks, nb)
		return true
	}
	// Split the full block into two halves, each with its own memory.
	half := blockSize / 2
	left := make([]string, half, blockSize)
	right := make([]string, blockSize-half, blockSize)
	copy(left, b[:half])
	copy(right, b[half:])
	if j <= half {
		left = slices.Insert(left, j, key)
	} else {
		right = slices.Insert(right, j-half, key)
	}
	clear(b)
	s.blocks[bi] = left
	s.blocks = slices.Insert(s.blocks, bi+1, right)
	return true
}

// Delete removes key and reports whether it was in the set.
func (s *Set) Delete(key string) bool {
	if s == nil || len(s.blocks) == 0 {
		return false
	}
	bi := s.locate(key)
	b := s.blocks[bi]
	j, found := slices.BinarySearch(b, key)
	if !found {
		return false
	}
	s.n--
	b = slices.Delete(b, j, j+1) // clears the vacated header
	s.blocks[bi] = b
	switch {
	case len(b) == 0:
		s.blocks = slices.Delete(s.blocks, bi, bi+1)
		if len(s.blocks) == 0 {
			s.blocks = nil
		}
	case len(b) < blockSize/4 && len(s.blocks) > 1:
		// Merge with a neighbour; split again if that overflows.
		l := bi
		if l == len(s.blocks)-1 {
			l--
		}
		merged := make([]string, 0, blockSize)
		merged = append(merged, s.blocks[l]...)
		if len(merged)+len(s.blocks[l+1]) <= blockSize {
			merged = append(merged, s.blocks[l+1]...)
			s.blocks[l] = merged
			s.blocks = slices.Delete(s.blocks, l+1, l+2)
			return true
		}
		all := append(append([]string(nil), merged...), s.blocks[l+1]...)
		half := len(all) / 2
		s.blocks[l] = append(merged[:0], all[:half]...)
		s.blocks[l+1] = append(make([]string, 0, blockSize), all[half:]...)
	}
	return true
}

// Has reports whether key is in the set.
func (s *Set) Has(key string) bool {
	if s == nil || len(s.blocks) == 0 {
		return false
	}
	_, found := slices.BinarySearch(s.blocks[s.locate(key)], key)
	return found
}

// Ascend calls fn for each key >= from, in ascending order, until fn
// returns false. fn must not change the set.
func (s *Set) Ascend(from string, fn func(key string) bool) {
	if s == nil || len(s.blocks) == 0 {
		return
	}
	bi := s.locate(from)
	j, _ := slices.BinarySearch(s.blocks[bi], from)
	for ; bi < len(s.blocks); bi, j = bi+1, 0 {
		for _, k := range s.blocks[bi][j:] {
			if !fn(k) {
				return
			}
		}
	}
}

// Bytes estimates the memory the set uses besides the keys' bytes: block
// headers and the string headers in them, at their capacity.
func (s *Set) Bytes() int {
	n := cap(s.blocks) * 24
	for _, b := range s.blocks {
		n += cap(b) * 16
	}
	return n
}
