package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// Between checkpoints the log runs ahead of its newest signed head (every
// verify run is itself audited), so the tree a verifier keeps is larger
// than the newest head. Running strata-audit verify again — the README's
// tour does — must not call that a rollback: only a newest head older than
// the newest head already verified is one.
func TestVerifyAgainBetweenCheckpointsIsNotARollback(t *testing.T) {
	t.Parallel()
	e, addr, stop, gw := seeded(t)
	grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	ctx := testenv.Context(t)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		h, err := e.auditor(addr).GetHead(ctx, &baseav1.GetHeadRequest{})
		if err == nil && h.GetSize() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no signed head: %v", err)
		}
	}
	// No new head from here on: the log grows past the newest head.
	stop()
	e.vars["BASEA_CHECKPOINT_INTERVAL"] = "1h"
	addr, _ = e.start()
	gw = e.people(addr, "gateway")
	grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	state := filepath.Join(t.TempDir(), "verified-head.json")
	for i := range 3 {
		time.Sleep(300 * time.Millisecond) // the chainer links what committed
		if code, v, errOut := e.cli(addr, state, "verify"); code != 0 || !v.OK {
			t.Fatalf("verify run %d: exit %d %+v %s", i+1, code, v, errOut)
		}
	}
}

// Incremental verification used to export only after the last verified
// entry: a database administrator who cut the log below that size (and
// deleted the signed heads, so no newer-head check fired) left it nothing
// new to read, and it said "ok". Now the last verified entry must still
// be there, and a log without its newest head, once one has been seen, is
// not "ok" either.
func TestIncrementalVerifyCatchesACutBelowTheVerifiedSize(t *testing.T) {
	t.Parallel()
	e, addr, stop, gw := seeded(t)
	for range 3 {
		grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	}
	waitForHead(t, e, 3)
	state := filepath.Join(t.TempDir(), "verified-head.json")
	// Each run is itself audited: the log grows by audit reads.
	for i := range 4 {
		time.Sleep(300 * time.Millisecond)
		if code, v, errOut := e.cli(addr, state, "verify"); code != 0 || !v.OK {
			t.Fatalf("verify run %d: exit %d %+v %s", i+1, code, v, errOut)
		}
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var kept struct {
		Size int64 `json:"size"`
	}
	if err := json.Unmarshal(b, &kept); err != nil {
		t.Fatal(err)
	}
	var grants int64
	e.queryRow(`SELECT max(c.seq) FROM audit_chain c JOIN audit_log a ON a.id = c.audit_id WHERE a.outcome <> 'audit_read'`, nil, &grants)
	if kept.Size-grants < 3 {
		t.Fatalf("verified size %d, last grant at %d: want at least three audit reads after it", kept.Size, grants)
	}
	stop()
	cut := strconv.FormatInt(grants, 10)
	ctx := testenv.Context(t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	for _, sql := range []string{
		`DELETE FROM audit_log WHERE id IN (SELECT audit_id FROM audit_chain WHERE seq > ` + cut + `)`,
		`DELETE FROM audit_chain WHERE seq > ` + cut, `DELETE FROM audit_tree WHERE seq > ` + cut,
		`DELETE FROM audit_heads`, `DELETE FROM audit_checkpoints`,
	} {
		tamper(t, conn, sql)
	}
	e.vars["BASEA_CHECKPOINT_INTERVAL"] = "1h" // no new head to compare with
	addr, _ = e.start()
	code, v, errOut := e.cli(addr, state, "verify")
	if code != 1 || v.OK {
		t.Fatalf("a log cut below the verified size %d was not caught: exit %d %+v %s", kept.Size, code, v, errOut)
	}
}
