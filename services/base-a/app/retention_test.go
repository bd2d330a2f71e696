package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
)

// Entries past the retention are purged in a signed segment ending at a
// checkpoint; verify still proves the rest of the log, a forged or removed
// purge record is caught, and nobody can delete young entries.
func TestRetentionPurgeIsSignedAndProvable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["BASEA_AUDIT_RETENTION"] = "4800h" // 200 days
	e.vars["BASEA_AUDIT_PURGE_INTERVAL"] = "100ms"
	ctx := testenv.Context(t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	scalar := func(sql string) int64 {
		t.Helper()
		var n int64
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	waitFor := func(what, sql string, want int64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for scalar(sql) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %d, want %d", what, scalar(sql), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Five entries from 400 days ago, there before the service starts: its
	// first chaining pass links them and signs a checkpoint at 5.
	if _, err := conn.Exec(ctx, `INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, purpose, reason,
		fields, outcome, client_ip, trace_id)
		SELECT gen_random_uuid(), now() - interval '400 days' + g * interval '1 minute', 'old-bank', 'gateway', '\x01'::bytea,
			'credit_analysis', 'an application long ago', ARRAY['name'], 'allowed', '10.0.0.1', ''
		FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	// A grant that expired 400 days ago goes with them.
	if _, err := conn.Exec(ctx, `INSERT INTO grants (id, token_hash, partner_id, caller, cpf_index, purpose, reason, fields,
		expires_at, max_uses) VALUES (gen_random_uuid(), '\x02', 'old-bank', 'gateway', '\x01', 'credit_analysis',
		'an application long ago', ARRAY['name'], now() - interval '400 days', 1)`); err != nil {
		t.Fatal(err)
	}
	addr, _ := e.start()
	waitFor("first checkpoint", `SELECT coalesce(max(seq), 0) FROM audit_checkpoints`, 5)
	// While they are the whole chain, the head is never purged.
	time.Sleep(300 * time.Millisecond)
	if n := scalar(`SELECT count(*) FROM audit_purges`); n != 0 {
		t.Fatalf("the chain head was purged")
	}

	// New accesses move the head on: the old segment goes.
	gw := e.people(addr, "gateway")
	seed(t, e.people(addr, "basea-loader"))
	for range 3 {
		grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	}
	waitFor("purge", `SELECT coalesce(max(through_seq), 0) FROM audit_purges`, 5)
	if n := scalar(`SELECT count(*) FROM audit_log WHERE partner_id = 'old-bank'`); n != 0 {
		t.Fatalf("%d old entries left", n)
	}
	if n := scalar(`SELECT count(*) FROM audit_log WHERE partner_id = 'bank-a'`); n != 3 {
		t.Fatalf("young entries lost: %d of 3 left", n)
	}
	if n := scalar(`SELECT count(*) FROM grants WHERE partner_id = 'old-bank'`); n != 0 {
		t.Fatalf("a grant expired before the cutoff was kept")
	}
	if n := scalar(`SELECT count(*) FROM grants WHERE partner_id = 'bank-a'`); n != 3 {
		t.Fatalf("young grants lost: %d of 3 left", n)
	}
	if n := scalar(`SELECT min(seq) FROM audit_checkpoints`); n != 5 {
		t.Fatalf("the anchor checkpoint is %d, want 5", n)
	}
	waitFor("chaining", `SELECT max(seq) FROM audit_chain`, 8)
	if code, v := e.verify(addr); code != 0 || !v.OK || v.Purged != 5 || v.Checked != 3 {
		t.Fatalf("after the purge: exit %d %+v", code, v)
	}

	// Only audit_purge deletes, and never anything young — not for the
	// application role, not for the owner by hand.
	app, err := pgx.Connect(ctx, e.appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if _, err := app.Exec(ctx, `SELECT audit_purge(6, now(), now(), '\x00')`); err == nil || !strings.Contains(err.Error(), "183 days") {
		t.Fatalf("the app role purged young entries: %v", err)
	}
	if _, err := app.Exec(ctx, `SELECT set_config('strata.audit_purge', 'on', false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, `DELETE FROM audit_log`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the app role deleted audit rows: %v", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM audit_log`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("the owner deleted audit rows by hand: %v", err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM audit_purges`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("the owner deleted a purge record: %v", err)
	}
	// The application role cannot change the audit tables either, nor
	// switch their triggers off.
	for _, q := range []string{`UPDATE audit_log SET reason = 'x'`, `TRUNCATE audit_log`, `DELETE FROM audit_chain`,
		`ALTER TABLE audit_log DISABLE TRIGGER USER`} {
		if _, err := app.Exec(ctx, q); err == nil {
			t.Fatalf("the app role ran %s", q)
		}
	}
	// A table owner that is not a superuser: no parameter it may set opens
	// the trail (the check is by role, not by a setting).
	owner := testenv.UniqueName(t, "owner")
	for _, q := range []string{`CREATE ROLE ` + owner + ` LOGIN PASSWORD 'owner-pw-123'`,
		`GRANT CONNECT ON DATABASE ` + pgx.Identifier{conn.Config().Database}.Sanitize() + ` TO ` + owner,
		`GRANT USAGE ON SCHEMA public TO ` + owner, `ALTER TABLE audit_log OWNER TO ` + owner} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(ctx, `ALTER TABLE audit_log OWNER TO CURRENT_USER`)
		_, _ = conn.Exec(ctx, `DROP OWNED BY `+owner)
		_, _ = conn.Exec(ctx, `DROP ROLE `+owner)
	})
	ou := conn.Config().Copy()
	ou.User, ou.Password = owner, "owner-pw-123"
	oconn, err := pgx.ConnectConfig(ctx, ou)
	if err != nil {
		t.Fatal(err)
	}
	defer oconn.Close(ctx)
	for _, set := range []string{`SET strata.audit_purge = 'on'`, `SET session_replication_role = replica`,
		`SET ROLE strata_basea_purge`, `SET SESSION AUTHORIZATION strata_basea_app`} {
		_, _ = oconn.Exec(ctx, set)
		if _, err := oconn.Exec(ctx, `DELETE FROM audit_log`); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("the owner deleted audit rows after %s: %v", set, err)
		}
	}

	// A superuser with triggers off: a forged purge record is caught...
	tamper(t, conn, `UPDATE audit_purges SET cutoff = cutoff + interval '30 days'`)
	if code, v := e.verify(addr); code != 1 || v.Bad != 5 || v.Problem != "purge record signature invalid" {
		t.Fatalf("forged purge record: exit %d %+v", code, v)
	}
	// ... and so is a removed one: the start of the log is then missing,
	// and the purger refuses to paper over the gap with a new record.
	tamper(t, conn, `DELETE FROM audit_purges`)
	time.Sleep(300 * time.Millisecond)
	if n := scalar(`SELECT count(*) FROM audit_purges`); n != 0 {
		t.Fatalf("the purger recorded a purge over a gap")
	}
	if code, v := e.verify(addr); code != 1 || v.Bad != 1 || !strings.Contains(v.Problem, "missing") {
		t.Fatalf("removed purge record: exit %d %+v", code, v)
	}
}
