package app_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// queryRow scans one row of sql, run as the superuser, into dest.
func (e *env) queryRow(sql string, args []any, dest ...any) {
	e.t.Helper()
	ctx := testenv.Context(e.t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// waitForHead waits until a signed head covers n entries and returns the
// newest head's size.
func waitForHead(t *testing.T, e *env, n int64) int64 {
	t.Helper()
	ctx := testenv.Context(t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var got int64
		_ = conn.QueryRow(ctx, `SELECT coalesce(max(size), 0) FROM audit_heads`).Scan(&got)
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signed head covers %d entries (%d)", n, got)
		}
	}
}

// A consistency proof Base A cannot give because a database administrator
// deleted tree hashes used to be "unavailable" (retry later), counted on
// the breaker every partner shares, so the gateway's witness retried it
// until it was dead-lettered and nobody was told. It is DataLoss now: not
// counted, not a reason to retry. A size past every signed head is "not
// found" (not yet), and an error nobody expected is Internal, never
// "unavailable".
func TestMissingTreeHashesAreDataLossNotUnavailable(t *testing.T) {
	t.Parallel()
	e, addr, _, gw := seeded(t)
	const entries = 8
	for range entries {
		grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	}
	waitForHead(t, e, entries)
	ctx := testenv.Context(t)
	auditor := e.auditor(addr)
	if _, err := auditor.GetConsistency(ctx, &baseav1.GetConsistencyRequest{OldSize: 3, NewSize: entries}); err != nil {
		t.Fatalf("untouched log: %v", err)
	}
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	tamper(t, conn, `DELETE FROM audit_tree WHERE seq BETWEEN 2 AND 5`)
	for range 8 {
		_, err := auditor.GetConsistency(ctx, &baseav1.GetConsistencyRequest{OldSize: 3, NewSize: entries})
		if status.Code(err) != codes.DataLoss {
			t.Fatalf("proof over deleted tree hashes: want DataLoss, got %v", err)
		}
	}
	_, err := auditor.GetConsistency(ctx, &baseav1.GetConsistencyRequest{OldSize: 3, NewSize: 1_000_000})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("proof to a size no head covers: want NotFound, got %v", err)
	}
	// The database breaker never counted any of it: an honest read works.
	g := grant(t, gw, "bank-b", maria, 1, 0, baseav1.Field_FIELD_NAME)
	if _, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-b"), Cpf: maria, GrantToken: g.GetToken()}); err != nil {
		t.Fatalf("after eight data-loss answers an honest read failed: %v", err)
	}
}

// An error nobody expected — here a schema that does not match the code,
// as after a botched migration — is not "retry later": Internal (500 at
// the gateway), logged by the server with its cause and trace id. It used
// to be answered Unavailable like a database that cannot be reached.
func TestUnexpectedStoreErrorIsInternal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr, _ := e.start()
	ctx := testenv.Context(t)
	e.admin(`ALTER TABLE audit_heads RENAME COLUMN note TO note_renamed`)
	if _, err := e.auditor(addr).GetHead(ctx, &baseav1.GetHeadRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("an unexpected store error: want Internal, got %v", err)
	}
}
