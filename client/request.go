package client

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// checkKey returns an error wrapping ErrInvalidKey unless key can be sent
// as a key: non-empty valid UTF-8 without whitespace or control characters
// (the server's rule).
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if !validKeyChars(key) {
		return fmt.Errorf("%w %q: keys must be UTF-8 without whitespace or control characters", ErrInvalidKey, key)
	}
	return nil
}

// validKeyChars reports whether s is valid UTF-8 without whitespace or
// control characters. The empty string passes.
func validKeyChars(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
		i += size
	}
	return true
}

// checkValue returns an error wrapping ErrInvalidValue unless the server
// would read "PUT k <v>" back as exactly v: valid UTF-8, no newline, no
// leading space or tab (the server skips the whole run of separators
// after the key), no trailing carriage return (dropped as part of a
// "\r\n" line ending). what names the argument in the message.
func checkValue(what, v string) error {
	var why string
	switch {
	case v == "":
		return nil
	case !utf8.ValidString(v):
		why = "not valid UTF-8"
	case v[0] == ' ' || v[0] == '\t':
		why = "starts with a space or tab, which the server reads as a separator"
	case v[len(v)-1] == '\r':
		why = "ends in a carriage return, which the server drops"
	default:
		for i := 0; i < len(v); i++ {
			if v[i] == '\n' {
				why = "contains a newline"
				break
			}
		}
		if why == "" {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %s", ErrInvalidValue, what, why)
}
