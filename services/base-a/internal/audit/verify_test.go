package audit_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

func entries(t testing.TB, n int) ([]audit.LogEntry, *audit.Tree) {
	tree := audit.NewTree(0, nil)
	out := make([]audit.LogEntry, 0, n)
	for i := range n {
		e := audit.LogEntry{Seq: int64(i + 1), CPFEnc: []byte(fmt.Sprintf("ciphertext-%d", i)), Row: audit.Row{AuditID: int64(i + 1),
			EntryID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), At: time.Unix(1_700_000_000+int64(i), 0), PartnerID: "bank-a",
			Caller: "gateway", CPFIndex: []byte{byte(i)}, AccessDetail: domain.AccessDetail{Purpose: "credit_analysis", Reason: "loan application",
				Fields: []string{"name"}, Outcome: "allowed", ClientIP: "203.0.113.7", TraceID: "t"}}}
		hs, err := tree.Append(audit.LeafData(e.Seq, e.Row, e.CPFEnc))
		if err != nil {
			t.Fatal(err)
		}
		e.Stored = hs
		out = append(out, e)
	}
	return out, tree
}

// The verifier accepts an honest log against its signed head and names the
// first bad entry of an edited one (the encrypted CPF included) and of a
// log cut below its head.
func TestLogVerifier(t *testing.T) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, audit.LogName)
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	es, tree := entries(t, 50)
	root, _ := tree.Root()
	head, err := audit.SignHead(signer, 50, root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	run := func(es []audit.LogEntry) audit.Result {
		v, err := audit.NewLogVerifier(verifier, audit.State{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.AddHead(head.Note, "test"); err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if !v.Add(e) {
				break
			}
		}
		return v.Finish()
	}
	if r := run(es); !r.OK || r.HeadsVerified != 1 {
		t.Fatalf("honest log: %+v", r)
	}
	edited := append([]audit.LogEntry(nil), es...)
	edited[20].CPFEnc = nil
	if r := run(edited); r.OK || r.FirstBadEntry != 21 {
		t.Fatalf("edited encrypted CPF: %+v", r)
	}
	if r := run(es[:40]); r.OK || r.FirstBadEntry != 41 {
		t.Fatalf("cut log: %+v", r)
	}
}

// BenchmarkLogVerifier is the verifier's own throughput (leaf encoding,
// hashing, tree and stored-hash checks), without a database.
func BenchmarkLogVerifier(b *testing.B) {
	const n = 100_000
	es, _ := entries(b, n)
	_, vkey, _ := note.GenerateKey(rand.Reader, audit.LogName)
	verifier, _ := note.NewVerifier(vkey)
	b.ResetTimer()
	for range b.N {
		v, _ := audit.NewLogVerifier(verifier, audit.State{})
		for _, e := range es {
			if !v.Add(e) {
				b.Fatal(v.Finish())
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
}
