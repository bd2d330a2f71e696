// Package crypto encrypts Base A's personal data at rest with AES-256-GCM
// under versioned data keys, and derives keyed blind indexes so a CPF can be
// looked up without being stored in clear.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrUnknownKey means a ciphertext names a key version not configured.
var ErrUnknownKey = errors.New("ciphertext key version not configured")

// ErrDecrypt means a ciphertext failed authentication (tampered or moved).
var ErrDecrypt = errors.New("ciphertext failed authentication")

// Keyring holds the data keys by version; new data uses the newest.
type Keyring struct {
	aeads   map[uint32]cipher.AEAD
	current uint32
	index   []byte
}

// ParseKeys parses "1:<base64 32 bytes>,2:<base64 32 bytes>" (the format of
// BASEA_DATA_KEYS) and the blind-index key (base64, at least 32 bytes).
func ParseKeys(dataKeys, indexKey string) (*Keyring, error) {
	k := &Keyring{aeads: map[uint32]cipher.AEAD{}}
	for _, part := range strings.Split(dataKeys, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		v, b64, ok := strings.Cut(part, ":")
		if !ok {
			return nil, errors.New("data keys must be VERSION:BASE64KEY separated by commas")
		}
		ver, err := strconv.ParseUint(v, 10, 32)
		if err != nil || ver == 0 {
			return nil, errors.New("data key version must be a positive integer")
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("data key %d must be 32 bytes, base64-encoded", ver)
		}
		block, _ := aes.NewCipher(raw)
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		if _, dup := k.aeads[uint32(ver)]; dup {
			return nil, fmt.Errorf("data key %d given twice", ver)
		}
		k.aeads[uint32(ver)] = aead
		k.current = max(k.current, uint32(ver))
	}
	if len(k.aeads) == 0 {
		return nil, errors.New("at least one data key is required")
	}
	idx, err := base64.StdEncoding.DecodeString(indexKey)
	if err != nil || len(idx) < 32 {
		return nil, errors.New("blind-index key must be at least 32 bytes, base64-encoded")
	}
	k.index = idx
	return k, nil
}

// NewKey returns a random 32-byte key, base64-encoded.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Current is the version new data is written with.
func (k *Keyring) Current() uint32 { return k.current }

// Versions lists configured versions, ascending.
func (k *Keyring) Versions() []uint32 {
	out := make([]uint32, 0, len(k.aeads))
	for v := range k.aeads {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Encrypt seals plaintext under the newest key. aad binds the ciphertext to
// its place (table, column, row), so it cannot be moved to another row.
// Layout: version (4 bytes, big endian) | nonce (12) | ciphertext+tag.
func (k *Keyring) Encrypt(plaintext, aad []byte) []byte {
	aead := k.aeads[k.current]
	out := make([]byte, 4+aead.NonceSize(), 4+aead.NonceSize()+len(plaintext)+aead.Overhead())
	binary.BigEndian.PutUint32(out, k.current)
	_, _ = rand.Read(out[4:])
	return aead.Seal(out, out[4:4+aead.NonceSize()], plaintext, aad)
}

// Decrypt opens a ciphertext made by Encrypt under any configured version.
func (k *Keyring) Decrypt(ct, aad []byte) ([]byte, uint32, error) {
	if len(ct) < 4 {
		return nil, 0, ErrDecrypt
	}
	ver := binary.BigEndian.Uint32(ct)
	aead, ok := k.aeads[ver]
	if !ok {
		return nil, ver, ErrUnknownKey
	}
	ns := aead.NonceSize()
	if len(ct) < 4+ns+aead.Overhead() {
		return nil, ver, ErrDecrypt
	}
	pt, err := aead.Open(nil, ct[4:4+ns], ct[4+ns:], aad)
	if err != nil {
		return nil, ver, ErrDecrypt
	}
	return pt, ver, nil
}

// BlindIndex is the keyed HMAC-SHA-256 of a value under the index key, with
// a domain label so indexes of different kinds never collide.
func (k *Keyring) BlindIndex(label string, parts ...string) []byte {
	m := hmac.New(sha256.New, k.index)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}
