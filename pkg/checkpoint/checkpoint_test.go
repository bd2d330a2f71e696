package checkpoint_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/strata-bureau/strata/pkg/checkpoint"
)

const origin = "example.org/log"

// keys is a fixed Ed25519 key named origin (signatures are deterministic).
func keys(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(" " + vkey + "\n") // as read from a file
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.NewVerifier(vkey[:len(vkey)-2]); err == nil {
		t.Fatal("a truncated verifier key was accepted")
	}
	return signer{name: name, hash: v.KeyHash(), priv: priv}, v
}

type signer struct {
	name string
	hash uint32
	priv ed25519.PrivateKey
}

func (s signer) Name() string                    { return s.name }
func (s signer) KeyHash() uint32                 { return s.hash }
func (s signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }

var (
	root = tlog.RecordHash([]byte("leaf"))
	at   = time.Date(2026, 11, 23, 1, 2, 3, 4000, time.UTC)
)

// What Sign writes, Open reads back: size, root, time (to the microsecond)
// and the note as sent.
func TestSignedHeadOpens(t *testing.T) {
	s, v := keys(t, origin)
	h, err := checkpoint.Sign(s, origin, 42, root, at.In(time.FixedZone("BRT", -3*3600)))
	if err != nil {
		t.Fatal(err)
	}
	want := "example.org/log\n42\n" + "DSfif3gnzNdFGZ6Os6avNo4QZK9Crp+DdA6YEh4rwCU=" + "\ntime 1795395723000004\n\n"
	if !strings.HasPrefix(string(h.Note), want) {
		t.Fatalf("signed text:\n%s\nwant it to start with\n%s", h.Note, want)
	}
	got, err := checkpoint.Open(h.Note, origin, v)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 42 || got.Root != root || !got.At.Equal(at) || got.At.Location() != time.UTC || !bytes.Equal(got.Note, h.Note) {
		t.Fatalf("opened %+v, signed %+v", got, h)
	}
}

// Open refuses a head whose signature does not verify with the key, and a
// correctly signed text that is not exactly a head of origin's log.
func TestOpenRefuses(t *testing.T) {
	s, v := keys(t, origin)
	h, err := checkpoint.Sign(s, origin, 42, root, at)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(h.Note, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := checkpoint.Open(tampered, origin, v); err == nil {
		t.Fatal("a tampered head opened")
	}
	_, other := keys(t, "other.example/log")
	if _, err := checkpoint.Open(h.Note, origin, other); err == nil {
		t.Fatal("a head opened with another log's key")
	}
	signed := func(text string) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	r := "DSfif3gnzNdFGZ6Os6avNo4QZK9Crp+DdA6YEh4rwCU="
	for _, c := range []struct{ text, want string }{
		{"other.example/log\n42\n" + r + "\ntime 1\n", "malformed body"},
		{origin + "\n42\n" + r + "\n", "malformed body"},
		{origin + "\n42\n" + r + "\ntime 1\nextra\n", "malformed body"},
		{origin + "\n-1\n" + r + "\ntime 1\n", "bad size"},
		{origin + "\nx\n" + r + "\ntime 1\n", "bad size"},
		{origin + "\n42\nAAAA\ntime 1\n", "bad root"},
		{origin + "\n42\n" + r + "\ntime soon\n", "bad time"},
		{origin + "\n+42\n" + r + "\ntime 1\n", "malformed body"},
		{origin + "\n42\n" + r + "\ntime 01\n", "malformed body"},
	} {
		if _, err := checkpoint.Open(signed(c.text), origin, v); err == nil || err.Error() != c.want {
			t.Errorf("%q: got %v, want %s", c.text, err, c.want)
		}
	}
}

// ClaimedSize reads the size line of any message, verified or not.
func TestClaimedSize(t *testing.T) {
	if n, ok := checkpoint.ClaimedSize([]byte(origin + "\n17\nforged")); !ok || n != 17 {
		t.Fatalf("got %d %v", n, ok)
	}
	if _, ok := checkpoint.ClaimedSize([]byte("no size")); ok {
		t.Fatal("claimed a size")
	}
}

// FuzzOpen: any message, and any text signed with the trusted key, is
// either refused or a head that Sign writes to the very same text.
func FuzzOpen(f *testing.F) {
	s, v := keys(f, origin)
	h, err := checkpoint.Sign(s, origin, 42, root, at)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Note, false)
	f.Add([]byte(origin+"\n0\n"+"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="+"\ntime 0\n"), true)
	f.Add([]byte(origin+"\n+1\nAAAA\ntime 1\n"), true)
	f.Fuzz(func(t *testing.T, b []byte, sign bool) {
		msg := b
		if sign {
			var err error
			if msg, err = note.Sign(&note.Note{Text: string(b)}, s); err != nil {
				return // not a note text at all
			}
		}
		got, err := checkpoint.Open(msg, origin, v)
		if err != nil {
			return
		}
		again, err := checkpoint.Sign(s, origin, got.Size, got.Root, got.At)
		if err != nil {
			t.Fatal(err)
		}
		text := func(m []byte) string { return string(m[:bytes.Index(m, []byte("\n\n"))]) }
		if text(again.Note) != text(msg) {
			t.Fatalf("accepted %q, which Sign writes as %q", msg, again.Note)
		}
	})
}
