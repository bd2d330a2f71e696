// Package grants makes and parses grant tokens: "sgt_" followed by 43
// base64url characters (32 random bytes). Only the SHA-256 of a token is
// stored; the token itself is shown once.
package grants

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// Prefix marks Strata grant tokens, so a leaked one is recognisable.
const Prefix = "sgt_"

const encodedLen = 43 // base64url, no padding, of 32 bytes

// ErrMalformed means the value cannot be a grant token.
var ErrMalformed = errors.New("malformed grant token")

// New returns a fresh token.
func New() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Parse checks a token's shape (before any lookup) and returns its hash.
func Parse(token string) ([]byte, error) {
	if len(token) != len(Prefix)+encodedLen || !strings.HasPrefix(token, Prefix) {
		return nil, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(token[len(Prefix):])
	if err != nil || len(raw) != 32 {
		return nil, ErrMalformed
	}
	return Hash(token), nil
}

// Hash is the stored form of a token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
