package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/app"
)

type tamperVerdict struct {
	OK      bool   `json:"ok"`
	Bad     int64  `json:"first_bad_entry"`
	Problem string `json:"problem"`
	Checked int64  `json:"checked_entries"`
	Size    int64  `json:"tree_size"`
}

// cli runs strata-audit with the auditor's certificate, the public
// verifier key and the given state file.
func (e *env) cli(addr, state string, args ...string) (int, tamperVerdict, string) {
	e.t.Helper()
	f := e.issue("strata-audit")
	vars := map[string]string{"STRATA_AUDIT_ADDR": addr, "STRATA_AUDIT_CERT": f.Cert, "STRATA_AUDIT_KEY": f.Key, "STRATA_AUDIT_CA": f.CA,
		"STRATA_AUDIT_VERIFIER_KEY": e.verifierKey(), "STRATA_AUDIT_STATE": state}
	var out, errOut bytes.Buffer
	code := app.RunAuditCLI(testenv.Context(e.t), config.Map(vars), args, &out, &errOut)
	var v tamperVerdict
	if args[0] == "verify" {
		if err := json.Unmarshal(out.Bytes(), &v); err != nil {
			e.t.Fatalf("verify printed %q / %q: %v", out.String(), errOut.String(), err)
		}
		if code == 1 && !strings.Contains(errOut.String(), fmt.Sprintf("seq %d:", v.Bad)) {
			e.t.Fatalf("verify did not name the first bad entry: %q", errOut.String())
		}
	}
	return code, v, errOut.String()
}

// The "Done when" of issue 12: whatever a database administrator does to
// the log — edit any field of an entry (the encrypted CPF included),
// reorder, insert a forged entry, forge a tree node or a head, delete a
// middle entry, cut the tail, cut the tail together with the newest heads
// and checkpoints — strata-audit verify catches it and names the first
// bad entry, and the offline verifier of an export (public key only) agrees.
func TestTamperingIsCaughtOnlineAndOffline(t *testing.T) {
	t.Parallel()
	const entries = 12
	cases := []struct {
		name string
		sql  []string // %[1]d is the audit id at seq 5, %[2]d at seq 6
		bad  int64
		want string
	}{
		{"edit entry_id", []string{`UPDATE audit_log SET entry_id = gen_random_uuid() WHERE id = %[1]d`}, 5, "altered"},
		{"edit at", []string{`UPDATE audit_log SET at = at + interval '1 second' WHERE id = %[1]d`}, 5, "altered"},
		{"edit partner_id", []string{`UPDATE audit_log SET partner_id = 'bank-z' WHERE id = %[1]d`}, 5, "altered"},
		{"edit caller", []string{`UPDATE audit_log SET caller = 'someone' WHERE id = %[1]d`}, 5, "altered"},
		{"edit cpf_index", []string{`UPDATE audit_log SET cpf_index = sha256(cpf_index) WHERE id = %[1]d`}, 5, "altered"},
		{"null cpf_enc", []string{`UPDATE audit_log SET cpf_enc = NULL WHERE id = %[1]d`}, 5, "altered"},
		{"edit cpf_enc", []string{`UPDATE audit_log SET cpf_enc = set_byte(cpf_enc, 20, (get_byte(cpf_enc, 20) + 1) %% 256) WHERE id = %[1]d`}, 5, "altered"},
		{"edit purpose", []string{`UPDATE audit_log SET purpose = 'collection' WHERE id = %[1]d`}, 5, "altered"},
		{"edit reason", []string{`UPDATE audit_log SET reason = 'nothing to see here' WHERE id = %[1]d`}, 5, "altered"},
		{"edit fields", []string{`UPDATE audit_log SET fields = ARRAY['debts'] WHERE id = %[1]d`}, 5, "altered"},
		{"edit outcome", []string{`UPDATE audit_log SET outcome = 'denied_expired' WHERE id = %[1]d`}, 5, "altered"},
		{"edit client_ip", []string{`UPDATE audit_log SET client_ip = '10.9.9.9' WHERE id = %[1]d`}, 5, "altered"},
		{"edit trace_id", []string{`UPDATE audit_log SET trace_id = 'feed' WHERE id = %[1]d`}, 5, "altered"},
		{"edit grant_id", []string{`UPDATE audit_log SET grant_id = NULL WHERE id = %[1]d`}, 5, "altered"},
		{"reorder", []string{
			`UPDATE audit_chain SET audit_id = 0 WHERE seq = 5`,
			`UPDATE audit_chain SET audit_id = %[1]d WHERE seq = 6`,
			`UPDATE audit_chain SET audit_id = %[2]d WHERE seq = 5`}, 5, "altered"},
		{"insert forged entry", []string{
			`UPDATE audit_chain SET seq = seq + 1000 WHERE seq >= 6`,
			`UPDATE audit_chain SET seq = seq - 999 WHERE seq >= 1000`,
			`INSERT INTO audit_log (id, entry_id, at, partner_id, caller, purpose, reason, fields, outcome, client_ip, trace_id)
			 VALUES (100000, gen_random_uuid(), now(), 'bank-a', 'gateway', 'credit_analysis', 'a harmless looking read', ARRAY['name'], 'allowed', '10.0.0.1', '')`,
			`INSERT INTO audit_chain (seq, audit_id, hash) VALUES (6, 100000, sha256('x'))`}, 6, "altered"},
		{"forged tree node", []string{`UPDATE audit_tree SET hash = sha256(hash) WHERE idx = (SELECT max(idx) FROM audit_tree WHERE seq = 6)`}, 6, "forged"},
		{"forged head", []string{`INSERT INTO audit_heads (size, root, signed_at, note) SELECT 7, sha256('r'), now(),
			convert_to(E'strata-audit-base-a\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 1\n\n— strata-audit-base-a AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', 'UTF8')
			WHERE NOT EXISTS (SELECT FROM audit_heads WHERE size = 7)`,
			`UPDATE audit_heads SET note = convert_to(replace(convert_from(note, 'UTF8'), E'\ntime ', E'\ntime 9'), 'UTF8') WHERE size = 7`}, 7, "forged"},
		{"delete middle entry", []string{`DELETE FROM audit_chain WHERE seq = 5`, `DELETE FROM audit_log WHERE id = %[1]d`}, 5, "missing"},
		{"delete tail", []string{
			`DELETE FROM audit_log WHERE id IN (SELECT audit_id FROM audit_chain WHERE seq > 9)`,
			`DELETE FROM audit_chain WHERE seq > 9`, `DELETE FROM audit_tree WHERE seq > 9`}, 10, "truncated"},
		{"delete tail and the newest heads", []string{
			`DELETE FROM audit_log WHERE id IN (SELECT audit_id FROM audit_chain WHERE seq > 9)`,
			`DELETE FROM audit_chain WHERE seq > 9`, `DELETE FROM audit_tree WHERE seq > 9`,
			`DELETE FROM audit_heads WHERE size > 9`, `DELETE FROM audit_checkpoints WHERE seq > 9`}, 10, "truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, addr, stop, gw := seeded(t)
			for range entries {
				grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
			}
			ctx := testenv.Context(t)
			conn := e.adminConn(ctx)
			defer conn.Close(ctx)
			if n := waitForHead(t, e, entries); n != entries {
				t.Fatalf("the newest signed head covers %d entries, not the %d written", n, entries)
			}
			dir := t.TempDir()
			state := filepath.Join(dir, "verified-head.json")
			if code, v, errOut := e.cli(addr, state, "verify"); code != 0 || !v.OK || v.Size < entries {
				t.Fatalf("untouched log: exit %d %+v %s", code, v, errOut)
			}
			// A witness keeps the newest head outside the database.
			head, err := e.auditor(addr).GetHead(ctx, &baseav1.GetHeadRequest{})
			if err != nil {
				t.Fatal(err)
			}
			witness := filepath.Join(dir, "witness.log")
			if err := os.WriteFile(witness, []byte(base64.StdEncoding.EncodeToString(head.GetNote())+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ids := map[int64]int64{}
			for _, seq := range []int64{5, 6} {
				var id int64
				if err := conn.QueryRow(ctx, `SELECT audit_id FROM audit_chain WHERE seq = $1`, seq).Scan(&id); err != nil {
					t.Fatal(err)
				}
				ids[seq] = id
			}
			// Tamper with Base A stopped, and restart it with its chainer
			// idle so the verifications below see the tampered log as left.
			stop()
			for _, q := range tc.sql {
				if strings.Contains(q, "%[") {
					q = fmt.Sprintf(q, ids[5], ids[6])
				}
				tamper(t, conn, q)
			}
			e.vars["BASEA_CHAIN_INTERVAL"] = "1h"
			addr, _ = e.start()

			code, v, errOut := e.cli(addr, state, "verify", "-full")
			if code != 1 || v.Bad != tc.bad || !strings.Contains(v.Problem, tc.want) {
				t.Fatalf("online: exit %d %+v, want entry %d %q (%s)", code, v, tc.bad, tc.want, errOut)
			}
			export := filepath.Join(dir, "log.jsonl")
			if code, _, errOut := e.cli(addr, state, "export-log", "-o", export); code != 0 {
				t.Fatalf("export-log: %d %s", code, errOut)
			}
			code, ov, errOut := e.cli(addr, "", "verify", "-offline", export, "-public-key", e.verifierKey(), "-witness", witness)
			if code != 1 || ov.Bad != tc.bad {
				t.Fatalf("offline: exit %d %+v, want entry %d (%s)", code, ov, tc.bad, errOut)
			}
		})
	}
}
