package app_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// A partner restricted to its own entries (audit:own, asserted by the
// gateway in metadata) never sees another partner's entry, whatever filter
// it sends; Base A enforces it from the caller's context, and every read
// of the log is itself in the log.
func TestAuditOwnNeverSeesAnotherPartner(t *testing.T) {
	t.Parallel()
	e, addr, _, gw := seeded(t)
	grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	grant(t, gw, "bank-b", maria, 1, 0, baseav1.Field_FIELD_NAME)
	grant(t, gw, "bank-b", joao, 1, 0, baseav1.Field_FIELD_NAME)
	viaGateway := baseav1.NewAuditServiceClient(e.dial(addr, "gateway"))
	ctx := testenv.Context(t)
	as := func(kv ...string) *baseav1.ListAccessLogsResponse {
		t.Helper()
		r, err := viaGateway.ListAccessLogs(metadata.AppendToOutgoingContext(ctx, kv...), &baseav1.ListAccessLogsRequest{PartnerId: "bank-b", PageSize: 500})
		if err != nil {
			t.Fatalf("%v: %v", kv, err)
		}
		return r
	}
	for _, filter := range []*baseav1.ListAccessLogsRequest{{PartnerId: "bank-b"}, {}, {Cpf: joao}, {PartnerId: "bank-a"}} {
		filter.PageSize = 500
		r, err := viaGateway.ListAccessLogs(metadata.AppendToOutgoingContext(ctx, "x-partner-id", "bank-a", "x-audit-scope", "own"), filter)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range r.GetEntries() {
			if en.GetPartnerId() != "bank-a" {
				t.Fatalf("audit:own reader saw %s's entry with filter %v", en.GetPartnerId(), filter)
			}
		}
	}
	// No scope, an unknown scope: still only its own.
	for _, kv := range [][]string{{"x-partner-id", "bank-a"}, {"x-partner-id", "bank-a", "x-audit-scope", "ALL"}} {
		for _, en := range as(kv...).GetEntries() {
			if en.GetPartnerId() != "bank-a" {
				t.Fatalf("%v saw %s's entry", kv, en.GetPartnerId())
			}
		}
	}
	// Without a partner, or with two, the gateway identity is refused.
	for _, kv := range [][]string{nil, {"x-partner-id", "bank-a", "x-partner-id", "bank-b"}, {"x-partner-id", ""}} {
		_, err := viaGateway.ListAccessLogs(metadata.AppendToOutgoingContext(ctx, kv...), &baseav1.ListAccessLogsRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%v: want PermissionDenied, got %v", kv, err)
		}
	}
	// Every-partner reads and verification are for audit:read only.
	ownCtx := metadata.AppendToOutgoingContext(ctx, "x-partner-id", "bank-a", "x-audit-scope", "own")
	if _, err := viaGateway.GetAccessHistory(ownCtx, &baseav1.GetAccessHistoryRequest{Cpf: maria}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("access history with audit:own: %v", err)
	}
	if _, err := viaGateway.VerifyChain(ownCtx, &baseav1.VerifyChainRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("verify with audit:own: %v", err)
	}
	staff := as("x-partner-id", "bureau-audit", "x-audit-scope", "all", "x-client-ip", "198.51.100.9")
	if len(staff.GetEntries()) == 0 {
		t.Fatal("audit:read sees none of bank-b's entries")
	}
	for _, en := range staff.GetEntries() {
		if en.GetPartnerId() != "bank-b" {
			t.Fatalf("the partner filter was not applied for audit:read: %s", en.GetPartnerId())
		}
	}
	// The reads above are in the log: who (partner, caller), when, at what.
	all, err := e.auditor(addr).ListAccessLogs(ctx, &baseav1.ListAccessLogsRequest{Outcome: baseav1.Outcome_OUTCOME_AUDIT_READ, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	byPartner := map[string]int{}
	for _, en := range all.GetEntries() {
		byPartner[en.GetPartnerId()]++
		if en.GetAt() == nil || en.GetReason() == "" || en.GetCaller() == "" {
			t.Fatalf("audit read lacks when/what/who: %+v", en)
		}
		if en.GetPartnerId() == "bureau-audit" && en.GetClientIp() != "198.51.100.9" {
			t.Fatalf("audit read lacks the client IP: %+v", en)
		}
	}
	if byPartner["bank-a"] != 6 || byPartner["bureau-audit"] != 1 || byPartner["strata-audit"] != 1 {
		t.Fatalf("audit reads recorded: %v", byPartner)
	}
}

// An inclusion proof is a read of the log like any other: it is recorded
// (audit_read) before it is answered. And an audit:own reader asking for
// another partner's entry learns nothing from the answer: it is the same
// "not found" as for an entry that does not exist, whether the entry is
// covered by the head asked for or not, and whether its tree hashes are
// still there or not (before, "not yet covered" and "unavailable" came
// back before the partner check and told it the entry existed).
func TestProofsAreAuditedAndRevealNothingOfOthers(t *testing.T) {
	t.Parallel()
	e, addr, _, gw := seeded(t)
	grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	waitForHead(t, e, 1)
	for range 3 {
		grant(t, gw, "bank-b", joao, 1, 0, baseav1.Field_FIELD_NAME)
	}
	waitForHead(t, e, 4)
	ctx := testenv.Context(t)
	viaGateway := baseav1.NewAuditServiceClient(e.dial(addr, "gateway"))
	staff := metadata.AppendToOutgoingContext(ctx, "x-partner-id", "bureau-audit", "x-audit-scope", "all")
	own := metadata.AppendToOutgoingContext(ctx, "x-partner-id", "bank-a", "x-audit-scope", "own")
	theirs, err := viaGateway.ListAccessLogs(staff, &baseav1.ListAccessLogsRequest{PartnerId: "bank-b", PageSize: 10})
	if err != nil || len(theirs.GetEntries()) == 0 {
		t.Fatalf("bank-b's entries: %v %v", theirs, err)
	}
	other := theirs.GetEntries()[0]
	var older int64 // a head that does not cover bank-b's entry
	e.queryRow(`SELECT coalesce(max(size), 0) FROM audit_heads WHERE size < $1`, []any{other.GetSeq()}, &older)
	if older == 0 {
		t.Fatal("no head older than bank-b's entry")
	}
	answer := func(ctx context.Context, id string, size int64) string {
		_, err := viaGateway.GetProof(ctx, &baseav1.GetProofRequest{EntryId: id, TreeSize: size})
		return status.Code(err).String() + ": " + status.Convert(err).Message()
	}
	if got := answer(staff, other.GetId(), 0); got != "OK: " {
		t.Fatalf("audit:read proof of bank-b's entry: %s", got)
	}
	check := func(when string) {
		t.Helper()
		for _, size := range []int64{0, older} {
			nobody := answer(own, uuid.NewString(), size)
			if got := answer(own, other.GetId(), size); got != nobody || !strings.HasPrefix(got, "NotFound") {
				t.Fatalf("%s, head %d: audit:own asking for another partner's entry got %q, for a made-up one %q", when, size, got, nobody)
			}
		}
	}
	check("untouched log")
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	tamper(t, conn, `DELETE FROM audit_tree WHERE seq <> `+strconv.FormatInt(other.GetSeq(), 10)) // its proof's siblings
	if got := answer(staff, other.GetId(), 0); !strings.HasPrefix(got, "DataLoss") {
		t.Fatalf("audit:read proof over deleted tree hashes: %s", got)
	}
	check("tree hashes deleted")
	// Every proof request above is in the log, with what was asked.
	reads, err := viaGateway.ListAccessLogs(staff, &baseav1.ListAccessLogsRequest{Outcome: baseav1.Outcome_OUTCOME_AUDIT_READ, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	proofs := map[string]int{}
	for _, en := range reads.GetEntries() {
		if strings.HasPrefix(en.GetReason(), "inclusion proof of entry ") {
			proofs[en.GetPartnerId()]++
		}
	}
	if proofs["bank-a"] != 8 || proofs["bureau-audit"] != 2 {
		t.Fatalf("proof requests recorded per reader: %v (want bank-a 8, bureau-audit 2)", proofs)
	}
}
