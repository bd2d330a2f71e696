package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/strata-bureau/strata/pkg/checkpoint"
)

// The verifiable log: certificate-transparency style, built with Go's
// checksum-database packages. Entry seq n is leaf n-1 of a Merkle tree
// (RFC 6962 hashing, tlog); tree heads are signed notes (Ed25519) in
// pkg/checkpoint's format, the one the gateway's witness reads, so anyone
// holding the public verifier key checks them, and inclusion and
// consistency proofs come from the stored tree hashes.

// LogName names the log in signed heads and in the verifier key.
const LogName = "strata-audit-base-a"

// LeafData is the canonical encoding of entry seq: every stored field,
// the encrypted CPF and its blind index included, length-prefixed so no
// two different entries share an encoding.
func LeafData(seq int64, r Row, cpfEnc []byte) []byte {
	var b bytes.Buffer
	b.WriteString("strata-audit-leaf/v1\n")
	put := func(p []byte) { writeField(&b, p) }
	puts := func(s string) { put([]byte(s)) }
	puts(strconv.FormatInt(seq, 10))
	puts(strconv.FormatInt(r.AuditID, 10))
	puts(r.EntryID)
	puts(r.At.UTC().Format(time.RFC3339Nano))
	puts(r.PartnerID)
	puts(r.Caller)
	put(r.CPFIndex)
	put(cpfEnc)
	puts(r.Purpose)
	puts(r.Reason)
	puts(strconv.Itoa(len(r.Fields)))
	for _, f := range r.Fields {
		puts(f)
	}
	puts(r.Outcome)
	puts(r.ClientIP)
	puts(r.TraceID)
	puts(r.GrantID)
	return b.Bytes()
}

// HeadSigner returns the note signer of tree heads for the checkpoint key.
func (k *Keys) HeadSigner() (note.Signer, error) {
	vkey, err := note.NewEd25519VerifierKey(LogName, k.public)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(vkey, "+")
	skey := fmt.Sprintf("PRIVATE+KEY+%s+%s+%s", LogName, parts[1],
		base64.StdEncoding.EncodeToString(append([]byte{1}, k.signer.Seed()...)))
	return note.NewSigner(skey)
}

// VerifierKey is the public verifier key of signed heads (note format),
// all an outside auditor needs.
func (k *Keys) VerifierKey() string {
	v, _ := note.NewEd25519VerifierKey(LogName, k.public)
	return v
}

// VerifierKeyOf returns the verifier key for an Ed25519 public key.
func VerifierKeyOf(pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(LogName, pub)
}

// Head is a signed tree head of Base A's log (pkg/checkpoint's format,
// origin LogName).
type Head = checkpoint.Head

// SignHead signs the tree head (size, root) at time at.
func SignHead(s note.Signer, size int64, root tlog.Hash, at time.Time) (Head, error) {
	return checkpoint.Sign(s, LogName, size, root, at)
}

// OpenHead verifies a signed head with the verifier key and parses it.
func OpenHead(msg []byte, v note.Verifier) (Head, error) {
	h, err := checkpoint.Open(msg, LogName, v)
	if err != nil {
		return Head{}, fmt.Errorf("signed head: %w", err)
	}
	return h, nil
}

// Tree is the right edge of a Merkle tree plus the hashes added since the
// last Prune: enough to append leaves and compute the root, in memory.
type Tree struct {
	size   int64
	hashes map[int64]tlog.Hash
}

// EdgeIndexes are the stored-hash indexes of the complete subtrees a tree
// of size n is made of (what TreeHash reads and appends need).
func EdgeIndexes(n int64) []int64 {
	var out []int64
	for l := 62; l >= 0; l-- {
		if n&(1<<uint(l)) != 0 {
			out = append(out, tlog.StoredHashIndex(l, (n>>uint(l))-1))
		}
	}
	return out
}

// NewTree starts from a tree of size n whose edge hashes are edge (index →
// hash, see EdgeIndexes). Check its Root against a signed head before
// trusting it.
func NewTree(n int64, edge map[int64]tlog.Hash) *Tree {
	t := &Tree{size: n, hashes: map[int64]tlog.Hash{}}
	for _, i := range EdgeIndexes(n) {
		t.hashes[i] = edge[i]
	}
	return t
}

// Size is the number of leaves.
func (t *Tree) Size() int64 { return t.size }

func (t *Tree) read(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := t.hashes[x]
		if !ok {
			return nil, fmt.Errorf("tree hash %d not held", x)
		}
		out[i] = h
	}
	return out, nil
}

// Append adds a leaf and returns the hashes to store from
// tlog.StoredHashIndex(0, old size).
func (t *Tree) Append(data []byte) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashes(t.size, data, tlog.HashReaderFunc(t.read))
	if err != nil {
		return nil, err
	}
	base := tlog.StoredHashIndex(0, t.size)
	for i, h := range hs {
		t.hashes[base+int64(i)] = h
	}
	t.size++
	return hs, nil
}

// Root is the tree hash.
func (t *Tree) Root() (tlog.Hash, error) {
	if t.size == 0 {
		return tlog.Hash{}, nil
	}
	return tlog.TreeHash(t.size, tlog.HashReaderFunc(t.read))
}

// Edge returns the edge hashes (for saving a verifier's state).
func (t *Tree) Edge() map[int64]tlog.Hash {
	out := map[int64]tlog.Hash{}
	for _, i := range EdgeIndexes(t.size) {
		out[i] = t.hashes[i]
	}
	return out
}

// Prune forgets every hash but the edge.
func (t *Tree) Prune() { t.hashes = t.Edge() }
