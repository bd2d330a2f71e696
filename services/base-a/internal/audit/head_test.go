package audit_test

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/strata-bureau/strata/pkg/checkpoint"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
)

// baseAHead is the head of size 3 Base A signs with the seed 0, 1, … 31 at
// 2026-11-23T00:00:00Z: the bytes of audit.checkpoint.signed and of GET
// /v1/audit/head's note. The gateway's witness test opens the same bytes.
const baseAHead = "strata-audit-base-a\n3\nGTQYIz7ZB3KkbscM+Fg1a8ZeEGs7DYHNolIao+ErEgk=\ntime 1795392000000000\n\n" +
	"— strata-audit-base-a QfzBDOWFnuEkl9S9+PeuvW/uEdBDlIWWUV1XDG5wlbPGdwc1ACg7ZbI1+pymiC+dhpChKbvWz7pZ+Y4Jp3wQDnesLQ8=\n"

// A signed head is byte for byte the wire format partners and witnesses
// hold, it opens with the published verifier key, and an edited one does
// not.
func TestSignedHeadIsTheWireFormat(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	k, err := audit.ParseKeys(base64.StdEncoding.EncodeToString(make([]byte, 32)), base64.StdEncoding.EncodeToString(seed))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.VerifierKey(), "strata-audit-base-a+41fcc10c+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"; got != want {
		t.Fatalf("verifier key %s, want %s", got, want)
	}
	s, err := k.HeadSigner()
	if err != nil {
		t.Fatal(err)
	}
	root := tlog.RecordHash([]byte("strata"))
	at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	h, err := audit.SignHead(s, 3, root, at)
	if err != nil {
		t.Fatal(err)
	}
	if string(h.Note) != baseAHead {
		t.Fatalf("signed\n%q\nwant\n%q", h.Note, baseAHead)
	}
	v, err := checkpoint.NewVerifier(k.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.OpenHead(h.Note, v)
	if err != nil || got.Size != 3 || got.Root != root || !got.At.Equal(at) {
		t.Fatalf("opened %+v, %v", got, err)
	}
	tampered := bytes.Replace(h.Note, []byte("\n3\n"), []byte("\n4\n"), 1)
	if _, err := audit.OpenHead(tampered, v); err == nil || err.Error() != "signed head: invalid signature for key strata-audit-base-a+41fcc10c" {
		t.Fatalf("tampered head: %v", err)
	}
}
