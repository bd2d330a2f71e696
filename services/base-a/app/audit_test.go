package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/app"
)

// runAudit runs the strata-audit command against addr as the auditor.
func (e *env) runAudit(addr string, args ...string) (int, string, string) {
	f := e.issue("strata-audit")
	vars := map[string]string{"STRATA_AUDIT_ADDR": addr, "STRATA_AUDIT_CERT": f.Cert, "STRATA_AUDIT_KEY": f.Key, "STRATA_AUDIT_CA": f.CA,
		"STRATA_AUDIT_VERIFIER_KEY": e.verifierKey()}
	var out, errOut bytes.Buffer
	code := app.RunAuditCLI(testenv.Context(e.t), config.Map(vars), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

type verdict struct {
	OK      bool   `json:"ok"`
	Checked int64  `json:"checked_entries"`
	Bad     int64  `json:"first_bad_entry"`
	Problem string `json:"problem"`
	CPs     int64  `json:"checkpoints_verified"`
	Purged  int64  `json:"purged_through"`
}

func (e *env) verify(addr string) (int, verdict) {
	e.t.Helper()
	code, out, errOut := e.runAudit(addr, "verify")
	var v verdict
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("verify printed %q / %q: %v", out, errOut, err)
	}
	if code == 1 && !strings.Contains(errOut, fmt.Sprintf("seq %d", v.Bad)) {
		e.t.Fatalf("verify did not name the first bad entry: %q", errOut)
	}
	return code, v
}

func TestStrataAuditCatchesEditsDeletionsAndTruncation(t *testing.T) {
	t.Parallel()
	e, addr, _, gw := seeded(t)
	for range 10 {
		grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	}
	ctx := testenv.Context(t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	// Wait until all 10 entries are chained and a checkpoint covers them.
	var n int64
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		_ = conn.QueryRow(ctx, `SELECT coalesce((SELECT max(seq) FROM audit_checkpoints), 0)`).Scan(&n)
		if n == 10 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n != 10 {
		t.Fatalf("checkpoint covers %d of 10 entries", n)
	}
	if code, v := e.verify(addr); code != 0 || !v.OK || v.Checked != 10 || v.CPs < 1 {
		t.Fatalf("untouched log: exit %d %+v", code, v)
	}

	// The list and export commands show the entries.
	code, out, _ := e.runAudit(addr, "export", "-cpf", maria)
	if code != 0 || strings.Count(out, `"outcome":"OUTCOME_GRANT_ISSUED"`) != 10 || !strings.Contains(out, `"outcome":"OUTCOME_AUDIT_READ"`) {
		t.Fatalf("export: exit %d, %d lines", code, strings.Count(out, "\n"))
	}

	// Tampering needs a superuser who switches triggers off; verify still sees it.
	auditID := func(seq int) int64 {
		var id int64
		if err := conn.QueryRow(ctx, `SELECT audit_id FROM audit_chain WHERE seq = $1`, seq).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}

	// 1. An edited entry.
	id4 := auditID(4)
	tamper(t, conn, fmt.Sprintf(`UPDATE audit_log SET reason = 'nothing to see here' WHERE id = %d`, id4))
	if code, v := e.verify(addr); code != 1 || v.Bad != 4 || v.Problem != "entry altered" {
		t.Fatalf("edited entry: exit %d %+v", code, v)
	}
	tamper(t, conn, fmt.Sprintf(`UPDATE audit_log SET reason = 'loan application #4711' WHERE id = %d`, id4))
	if code, v := e.verify(addr); code != 0 {
		t.Fatalf("restored entry: exit %d %+v", code, v)
	}

	// 2. A truncated tail: the last three entries removed.
	tamper(t, conn, `DELETE FROM audit_chain WHERE seq > 7`)
	tamper(t, conn, fmt.Sprintf(`DELETE FROM audit_log WHERE id > %d`, auditID(7)))
	if code, v := e.verify(addr); code != 1 || v.Bad != 8 || !(strings.Contains(v.Problem, "truncated") || strings.Contains(v.Problem, "missing") ||
		strings.Contains(v.Problem, "deleted")) {
		// Base A keeps running here: entries it chains after the cut (the
		// verifier's own reads are logged) make the cut show as a gap, and
		// an entry whose link was cut can be chained again (as seq 8) by the
		// chainer's sweep before the test deletes the entry itself, which
		// shows as seq 8's entry deleted. Each is the tampering, at seq 8.
		t.Fatalf("truncated tail: exit %d %+v", code, v)
	}

	// 3. A deleted entry in the middle (entry and chain link both removed).
	id5 := auditID(5)
	tamper(t, conn, `DELETE FROM audit_chain WHERE seq = 5`)
	tamper(t, conn, fmt.Sprintf(`DELETE FROM audit_log WHERE id = %d`, id5))
	if code, v := e.verify(addr); code != 1 || v.Bad != 5 || !strings.Contains(v.Problem, "missing") {
		t.Fatalf("deleted entry: exit %d %+v", code, v)
	}
}
