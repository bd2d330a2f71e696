// Package checkpoint is the signed tree head of a verifiable log, the one
// text a log signs and its verifiers and witnesses read (as
// golang.org/x/mod/sumdb/note and tlog are shared by the Go checksum
// database and its clients). A head is a signed note (Ed25519) whose text
// is the C2SP tlog-checkpoint body plus one extension line:
//
//	<origin>
//	<tree size>
//	<base64 RFC 6962 root hash>
//	time <unix microseconds>
//
// Sign writes it; Open verifies the signature and reads it back, accepting
// only exactly what Sign writes. What a reader requires beyond the format
// (a witness refusing the empty tree, which key it trusts, consistency with
// what it kept) is its own policy, on top.
package checkpoint

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Head is a signed tree head.
type Head struct {
	Size int64
	Root tlog.Hash
	At   time.Time
	Note []byte // the signed note, as sent
}

// text is a head's body.
func text(origin string, size int64, root tlog.Hash, at time.Time) string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %d\n", origin, size, base64.StdEncoding.EncodeToString(root[:]), at.UTC().UnixMicro())
}

// Sign signs the head of origin's tree of size leaves with root at time at.
func Sign(s note.Signer, origin string, size int64, root tlog.Hash, at time.Time) (Head, error) {
	msg, err := note.Sign(&note.Note{Text: text(origin, size, root, at)}, s)
	if err != nil {
		return Head{}, err
	}
	return Head{Size: size, Root: root, At: at.UTC(), Note: msg}, nil
}

// Open verifies msg's signature with v and reads the head of origin's log
// it carries. A signature error is note's; a body that is not exactly what
// Sign writes for origin is "malformed body", "bad size", "bad root" or
// "bad time".
func Open(msg []byte, origin string, v note.Verifier) (Head, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Head{}, err
	}
	h, err := parse(n.Text, origin)
	if err != nil {
		return Head{}, err
	}
	h.Note = msg
	return h, nil
}

func parse(body, origin string) (Head, error) {
	lines := strings.Split(body, "\n")
	if len(lines) != 5 || lines[0] != origin || lines[4] != "" || !strings.HasPrefix(lines[3], "time ") {
		return Head{}, errors.New("malformed body")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return Head{}, errors.New("bad size")
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return Head{}, errors.New("bad root")
	}
	us, err := strconv.ParseInt(strings.TrimPrefix(lines[3], "time "), 10, 64)
	if err != nil {
		return Head{}, errors.New("bad time")
	}
	h := Head{Size: size, At: time.UnixMicro(us).UTC()}
	copy(h.Root[:], raw)
	if text(origin, h.Size, h.Root, h.At) != body {
		return Head{}, errors.New("malformed body") // e.g. "+7" or "007": one head, one text
	}
	return h, nil
}

// NewVerifier reads a log's verifier key as configured or published (the
// note's "name+hash+key" text; white space around it, such as a file's
// final newline, is ignored).
func NewVerifier(vkey string) (note.Verifier, error) {
	return note.NewVerifier(strings.TrimSpace(vkey))
}

// ClaimedSize is the tree size an unverified head claims, to name what a
// head that fails Open pretended to cover. Never trust it otherwise.
func ClaimedSize(msg []byte) (int64, bool) {
	lines := strings.SplitN(string(msg), "\n", 3)
	if len(lines) != 3 {
		return 0, false
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	return n, err == nil
}
