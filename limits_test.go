package kvstore

import (
	"errors"
	"testing"
)

func TestCheckRecordSize(t *testing.T) {
	for _, c := range []struct {
		key, val int
		ok       bool
	}{
		{0, 0, true},
		{MaxKeyBytes, MaxValueBytes, true},
		{MaxKeyBytes + 1, 0, false},
		{0, MaxValueBytes + 1, false},
		{1 << 40, 5, false},
	} {
		err := checkRecordSize(c.key, c.val)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrTooLarge)) {
			t.Errorf("checkRecordSize(%d, %d) = %v, want ok=%v or ErrTooLarge", c.key, c.val, err, c.ok)
		}
	}
}
