package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

// The chain digest and the Merkle leaf are encodings that stored chains,
// signed heads and auditors' exported logs already commit to: a change to
// either byte makes every existing log fail verification.
func TestEntryEncodingsAreStable(t *testing.T) {
	r := audit.Row{AuditID: 7, EntryID: "00000000-0000-4000-8000-000000000007", At: time.Date(2026, 11, 23, 1, 2, 3, 456789000, time.UTC),
		PartnerID: "bank-a", Caller: "gateway", CPFIndex: []byte{0xca, 0xfe},
		AccessDetail: domain.AccessDetail{Purpose: "credit_analysis", Reason: "loan application", Fields: []string{"name", "debts"},
			Outcome: "allowed", ClientIP: "203.0.113.7", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", GrantID: "g-1"}}
	leaf := sha256.Sum256(audit.LeafData(3, r, []byte("ciphertext")))
	if got, want := hex.EncodeToString(leaf[:]), "44d7edc6983d3eaf807fc8375fa0556e513696c8860398842f96bb12f3871d58"; got != want {
		t.Errorf("leaf data sha256 %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(audit.Digest(r)), "40dbea100e029aa64b5b9d8522433dcadddc0b17072768ada88c6a1b91ef34ae"; got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
}
