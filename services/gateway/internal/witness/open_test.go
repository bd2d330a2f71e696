package witness_test

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/strata-bureau/strata/pkg/checkpoint"
	"github.com/strata-bureau/strata/services/gateway/internal/witness"
)

// baseAHead is a head exactly as Base A signs it (size 3, at
// 2026-11-23T00:00:00Z, with the seed 0, 1, … 31), the bytes of
// audit.checkpoint.signed; Base A's audit test pins that it signs these
// bytes. baseAKey is its verifier key, the witness's AUDIT_VERIFIER_KEY.
const (
	baseAHead = "strata-audit-base-a\n3\nGTQYIz7ZB3KkbscM+Fg1a8ZeEGs7DYHNolIao+ErEgk=\ntime 1795392000000000\n\n" +
		"— strata-audit-base-a QfzBDOWFnuEkl9S9+PeuvW/uEdBDlIWWUV1XDG5wlbPGdwc1ACg7ZbI1+pymiC+dhpChKbvWz7pZ+Y4Jp3wQDnesLQ8=\n"
	baseAKey = "strata-audit-base-a+41fcc10c+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
)

// The witness reads what Base A signs, and refuses the same head edited,
// a head of the empty tree, and a head of another log.
func TestOpenReadsBaseAHeadsOnly(t *testing.T) {
	v, err := note.NewVerifier(baseAKey)
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.Open([]byte(baseAHead), v)
	if err != nil || h.Size != 3 || h.Root != tlog.RecordHash([]byte("strata")) || string(h.Note) != baseAHead {
		t.Fatalf("Base A's head: %+v, %v", h, err)
	}
	tampered := bytes.Replace([]byte(baseAHead), []byte("\n3\n"), []byte("\n4\n"), 1)
	if _, err := witness.Open(tampered, v); err == nil {
		t.Fatal("a tampered head opened")
	}
	s, v := keys(t)
	empty, err := checkpoint.Sign(s, logName, 0, tlog.Hash{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := witness.Open(empty.Note, v); err == nil || err.Error() != "bad size" {
		t.Fatalf("head of the empty tree: %v", err)
	}
	other, err := checkpoint.Sign(s, "another-log", 3, tlog.Hash{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := witness.Open(other.Note, v); err == nil {
		t.Fatal("a head of another log opened")
	}
}

// FuzzOpen: whatever arrives as audit.checkpoint.signed, unsigned or signed
// with the trusted key, is refused or is a head of at least one entry.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(baseAHead), false)
	f.Add([]byte("strata-audit-base-a\n0\nAAAA\ntime 1\n"), true)
	s, v := keys(f)
	f.Fuzz(func(t *testing.T, b []byte, sign bool) {
		msg := b
		if sign {
			var err error
			if msg, err = note.Sign(&note.Note{Text: string(b)}, s); err != nil {
				return
			}
		}
		if h, err := witness.Open(msg, v); err == nil && h.Size < 1 {
			t.Fatalf("opened a head of size %d", h.Size)
		}
	})
}
