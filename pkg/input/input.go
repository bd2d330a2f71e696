// Package input checks untrusted text the same way at every edge: the
// gateway refuses it with a 400/401 before it is forwarded, and each base
// checks it again (defence in depth), so a value no store or protocol can
// carry — a NUL, a control character, invalid UTF-8, a header byte HTTP/2
// refuses — never reaches one and is never mistaken for a backend failure.
package input

import (
	"errors"
	"fmt"
	"net"
	"unicode"
	"unicode/utf8"
)

// Errors Text and Token return (wrapped with the detail).
var (
	ErrEncoding = errors.New("not valid UTF-8")
	ErrControl  = errors.New("holds a NUL or control character")
	ErrLength   = errors.New("too long")
	ErrToken    = errors.New("holds characters outside printable ASCII")
)

// Text checks free text (a grant's reason, a partner's name): valid UTF-8,
// at most maxBytes bytes, and no NUL or other control character (tabs and
// new lines included: no field Strata stores is multi-line).
func Text(s string, maxBytes int) error {
	if len(s) > maxBytes {
		return fmt.Errorf("%w (at most %d bytes)", ErrLength, maxBytes)
	}
	if !utf8.ValidString(s) {
		return ErrEncoding
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ErrControl
		}
	}
	return nil
}

// Token checks a value that standards restrict to printable ASCII: an HTTP
// credential (RFC 9110 token68, RFC 7617 basic credentials, RFC 6750
// bearer tokens), a grant token, an id. Space (0x20) is allowed only when
// spaces is true (e.g. between an auth scheme and its credentials).
func Token(s string, maxBytes int, spaces bool) error {
	if len(s) > maxBytes {
		return fmt.Errorf("%w (at most %d bytes)", ErrLength, maxBytes)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && spaces {
			continue
		}
		if c < 0x21 || c > 0x7e {
			return ErrToken
		}
	}
	return nil
}

// IP checks a client address as the gateway forwards it: a literal IPv4 or
// IPv6 address, nothing else.
func IP(s string) error {
	if len(s) > 45 || net.ParseIP(s) == nil {
		return errors.New("not an IP address")
	}
	return nil
}

// UpperASCII upper-cases the ASCII letters of s and leaves every other
// byte as it is: "outcome=granted" finds the enum OUTCOME_GRANTED, while
// no non-ASCII letter can fold into an ASCII name (strings.ToUpper maps
// "ſ" to "S").
func UpperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
