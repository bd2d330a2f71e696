package app_test

import (
	"testing"

	"github.com/google/uuid"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// The attack: a grant whose reason holds NUL bytes was answered
// Unavailable (PostgreSQL's "invalid byte sequence", 22021, taken for a
// database failure) and a few of them opened Base A's database breaker for
// every partner. Now it is the caller's invalid input, checked before the
// store and — for values that slip past validation, such as a filter —
// mapped from the store's refusal; either way the breaker never moves.
func TestInputTheStoreCannotHoldIsInvalidArgument(t *testing.T) {
	t.Parallel()
	e, addr, _, gw := seeded(t)
	ctx := testenv.Context(t)
	for range 8 {
		_, err := gw.RequestGrant(ctx, &baseav1.RequestGrantRequest{Context: ctxFor("bank-a"), Cpf: maria,
			Purpose: baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS, Reason: "loan\x00application\x00", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("NUL in reason: want InvalidArgument, got %v", err)
		}
		// Unvalidated on the way in (a filter), refused by PostgreSQL.
		_, err = e.auditor(addr).ListAccessLogs(ctx, &baseav1.ListAccessLogsRequest{PartnerId: "bank\x00a"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("NUL in a filter: want InvalidArgument, got %v", err)
		}
		_, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: &baseav1.AccessContext{PartnerId: "bank-a", ClientIp: "1.2.3.4\x00"},
			Cpf: maria, GrantToken: "sgt_x"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("NUL in the client address: want InvalidArgument, got %v", err)
		}
	}
	// Proofs of entries or heads that do not exist are "not found" (the
	// query found no row), never a database failure: a partner asking for
	// them again and again must not open the breaker for everyone.
	for i := range 8 {
		_, err := e.auditor(addr).GetProof(ctx, &baseav1.GetProofRequest{EntryId: uuid.NewString()})
		if c := status.Code(err); c != codes.NotFound && c != codes.InvalidArgument {
			t.Fatalf("proof of an unknown entry: want NotFound, got %v", err)
		}
		_, err = e.auditor(addr).GetProof(ctx, &baseav1.GetProofRequest{EntryId: uuid.NewString(), TreeSize: int64(1_000_000 + i)})
		if c := status.Code(err); c != codes.NotFound && c != codes.InvalidArgument {
			t.Fatalf("proof in a head that does not exist: want NotFound, got %v", err)
		}
	}
	// The breaker is still closed: an honest partner is served at once.
	g := grant(t, gw, "bank-b", cpf.CPF(maria).Formatted(), 1, 0, baseav1.Field_FIELD_NAME)
	if _, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-b"), Cpf: maria, GrantToken: g.GetToken()}); err != nil {
		t.Fatalf("after the attack an honest read failed: %v", err)
	}
}
