// Package audit holds the tamper evidence of Base A's access log: each entry
// is linked into a keyed hash chain (HMAC-SHA-256 with a key that is not in
// the database), and the chain head is signed with Ed25519 at checkpoints,
// so an auditor can prove entries were neither edited, removed nor cut off.
package audit

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

// Keys are the chain key and the checkpoint signing key.
type Keys struct {
	chain  []byte
	signer ed25519.PrivateKey
	public ed25519.PublicKey
}

// ParseKeys reads the chain key (base64, ≥32 bytes) and the Ed25519 seed
// (base64, 32 bytes).
func ParseKeys(chainKey, signingSeed string) (*Keys, error) {
	ck, err := base64.StdEncoding.DecodeString(chainKey)
	if err != nil || len(ck) < 32 {
		return nil, errors.New("audit chain key must be at least 32 bytes, base64-encoded")
	}
	seed, err := base64.StdEncoding.DecodeString(signingSeed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("audit signing key must be a 32-byte Ed25519 seed, base64-encoded")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Keys{chain: ck, signer: priv, public: priv.Public().(ed25519.PublicKey)}, nil
}

// PublicKey verifies checkpoints; auditors may hold only this.
func (k *Keys) PublicKey() ed25519.PublicKey { return k.public }

// Row is an audit entry as stored, the input of its digest.
type Row struct {
	AuditID   int64
	EntryID   string
	At        time.Time
	PartnerID string
	Caller    string
	CPFIndex  []byte
	domain.AccessDetail
}

// Digest is SHA-256 over a length-prefixed encoding of every field, so no
// two different rows share an encoding.
func Digest(r Row) []byte {
	h := sha256.New()
	put := func(s string) { writeField(h, []byte(s)) }
	put(fmt.Sprint(r.AuditID))
	put(r.EntryID)
	put(r.At.UTC().Format(time.RFC3339Nano))
	put(r.PartnerID)
	put(r.Caller)
	put(hex.EncodeToString(r.CPFIndex))
	put(r.Purpose)
	put(r.Reason)
	put(strings.Join(r.Fields, ","))
	put(r.Outcome)
	put(r.ClientIP)
	put(r.TraceID)
	put(r.GrantID)
	return h.Sum(nil)
}

// writeField writes p after its length (8 bytes, big-endian): the
// encoding of every field of Digest and LeafData, so that no two different
// entries share an encoding.
func writeField(w io.Writer, p []byte) {
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(p)))
	w.Write(l[:])
	w.Write(p)
}

// Link computes the chain hash of entry seq from the previous hash.
func (k *Keys) Link(prev []byte, seq int64, digest []byte) []byte {
	m := hmac.New(sha256.New, k.chain)
	m.Write(prev)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	m.Write(b[:])
	m.Write(digest)
	return m.Sum(nil)
}

func checkpointMessage(seq int64, hash []byte, at time.Time) []byte {
	return fmt.Appendf(nil, "strata-audit-checkpoint|%d|%x|%d", seq, hash, at.UTC().UnixMicro())
}

// Sign signs a checkpoint.
func (k *Keys) Sign(seq int64, hash []byte, at time.Time) []byte {
	return ed25519.Sign(k.signer, checkpointMessage(seq, hash, at))
}

// VerifyCheckpoint checks a checkpoint's signature.
func VerifyCheckpoint(pub ed25519.PublicKey, seq int64, hash []byte, at time.Time, sig []byte) bool {
	return ed25519.Verify(pub, checkpointMessage(seq, hash, at), sig)
}

func purgeMessage(through int64, anchor []byte, cutoff, at time.Time, entries int64) []byte {
	return fmt.Appendf(nil, "strata-audit-purge|%d|%x|%d|%d|%d", through, anchor, cutoff.UTC().UnixMicro(), at.UTC().UnixMicro(), entries)
}

// SignPurge signs the record of a retention purge of every entry up to
// through, whose checkpoint hash (the anchor the rest of the chain is
// verified from) is anchor.
func (k *Keys) SignPurge(through int64, anchor []byte, cutoff, at time.Time, entries int64) []byte {
	return ed25519.Sign(k.signer, purgeMessage(through, anchor, cutoff, at, entries))
}

// VerifyPurge checks a purge record's signature.
func VerifyPurge(pub ed25519.PublicKey, through int64, anchor []byte, cutoff, at time.Time, entries int64, sig []byte) bool {
	return ed25519.Verify(pub, purgeMessage(through, anchor, cutoff, at, entries), sig)
}
