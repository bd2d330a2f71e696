// Package apikey makes and parses the gateway's API keys:
//
//	strata_live_<id>_<secret>_<check>
//
// id is 12 lower-case base32 characters (visible in logs and the admin
// API), secret 32 base32 characters (160 bits), check the CRC-32 of the
// rest in 7 base32 characters. The prefix makes leaked keys easy to spot
// (secret scanners), the check rejects typos before any lookup, and only
// HMAC-SHA-256(pepper, secret) is stored.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
)

// Prefix of every live key.
const Prefix = "strata_live_"

const (
	idLen     = 12
	secretLen = 32
	checkLen  = 7
	total     = len(Prefix) + idLen + 1 + secretLen + 1 + checkLen
)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformed means the value cannot be a key (wrong shape or checksum).
var ErrMalformed = errors.New("malformed API key")

// Key is a parsed key.
type Key struct {
	ID     string
	Secret string
}

func random(n int) string {
	b := make([]byte, n*5/8+1)
	_, _ = rand.Read(b)
	return enc.EncodeToString(b)[:n]
}

func check(body string) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE([]byte(body)))
	return enc.EncodeToString(b[:])[:checkLen]
}

// New returns a fresh key: its id and the full string to show once.
func New() (id, full string) {
	id = random(idLen)
	body := Prefix + id + "_" + random(secretLen)
	return id, body + "_" + check(body)
}

// NewSecret returns a fresh secret of the same strength (OAuth clients).
func NewSecret() string { return random(secretLen) }

// Parse checks shape and checksum.
func Parse(s string) (Key, error) {
	if len(s) != total || !strings.HasPrefix(s, Prefix) {
		return Key{}, ErrMalformed
	}
	rest := s[len(Prefix):]
	if rest[idLen] != '_' || rest[idLen+1+secretLen] != '_' {
		return Key{}, ErrMalformed
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7' || c == '_') {
			return Key{}, ErrMalformed
		}
	}
	body := s[:len(s)-checkLen-1]
	if !hmac.Equal([]byte(check(body)), []byte(s[len(s)-checkLen:])) {
		return Key{}, ErrMalformed
	}
	return Key{ID: rest[:idLen], Secret: rest[idLen+1 : idLen+1+secretLen]}, nil
}

// IDOf returns the key id of a full key string, for "key not found" logs.
func IDOf(full string) string {
	k, err := Parse(full)
	if err != nil {
		return ""
	}
	return k.ID
}

// Hash is the stored form of a secret.
func Hash(pepper []byte, secret string) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(secret))
	return m.Sum(nil)
}
