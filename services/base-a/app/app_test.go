package app_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-bureau/strata/pkg/amqp"
	"github.com/strata-bureau/strata/pkg/config"
	"github.com/strata-bureau/strata/pkg/cpf"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	eventsv1 "github.com/strata-bureau/strata/proto/gen/go/events/v1"
	"github.com/strata-bureau/strata/services/base-a/app"
	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
)

var (
	maria = string(cpf.Complete("529982247"))
	joao  = string(cpf.Complete("111444777"))
)

func ctxFor(partner string) *baseav1.AccessContext {
	return &baseav1.AccessContext{PartnerId: partner, ClientIp: "203.0.113.7"}
}

func seed(t testing.TB, loader baseav1.PeopleServiceClient) {
	t.Helper()
	ctx := testenv.Context(t)
	for _, p := range []struct{ cpf, name, street string }{{maria, "Maria Aparecida da Silva", "Rua das Flores"}, {joao, "João Pereira Santos", "Avenida Paulista"}} {
		_, err := loader.UpsertPerson(ctx, &baseav1.UpsertPersonRequest{Cpf: p.cpf, Name: p.name,
			Address: &baseav1.Address{Street: p.street, Number: "100", City: "São Paulo", State: "SP", PostalCode: "01310100"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, st := range []baseav1.DebtStatus{baseav1.DebtStatus_DEBT_STATUS_OPEN, baseav1.DebtStatus_DEBT_STATUS_OPEN, baseav1.DebtStatus_DEBT_STATUS_PAID} {
		_, err := loader.RecordDebt(ctx, &baseav1.RecordDebtRequest{Cpf: maria, Debt: &baseav1.Debt{Creditor: "Banco Exemplo",
			ContractId: fmt.Sprintf("CT-%d", i), AmountCents: int64(10000 * (i + 1)), Currency: "BRL", DueDate: "2026-12-01", Status: st}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func grant(t *testing.T, c baseav1.PeopleServiceClient, partner, who string, maxUses int32, ttl int32, fields ...baseav1.Field) *baseav1.RequestGrantResponse {
	t.Helper()
	g, err := c.RequestGrant(testenv.Context(t), &baseav1.RequestGrantRequest{Context: ctxFor(partner), Cpf: who,
		Purpose: baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS, Reason: "loan application #4711", Fields: fields, MaxUses: maxUses, TtlSeconds: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func wantRefusal(t *testing.T, err error, reason string) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied || !strings.HasSuffix(status.Convert(err).Message(), reason) {
		t.Fatalf("want PermissionDenied %q, got %v", reason, err)
	}
}

func TestGrantsAllowExactlyWhatTheyScope(t *testing.T) {
	t.Parallel()
	e, addr, _, gw := seeded(t)
	ctx := testenv.Context(t)

	g := grant(t, gw, "bank-a", cpf.CPF(maria).Formatted(), 2, 0, baseav1.Field_FIELD_NAME, baseav1.Field_FIELD_DEBTS)
	if !strings.HasPrefix(g.GetToken(), "sgt_") || g.GetMaxUses() != 2 || g.GetCpf() != maria {
		t.Fatalf("unexpected grant %+v", g)
	}
	if left := time.Until(g.GetExpiresAt().AsTime()); left < 110*time.Second || left > 120*time.Second {
		t.Fatalf("default lifetime is 2 minutes, got %s", left)
	}
	resp, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetPerson()
	if p.GetName() != "Maria Aparecida da Silva" || p.GetAddress() != nil || len(p.GetDebts()) != 3 {
		t.Fatalf("read returned more or less than granted: %+v", p)
	}
	if _, err := gw.ListDebts(ctx, &baseav1.ListDebtsRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()}); err != nil {
		t.Fatal(err)
	}
	_, err = gw.ListDebts(ctx, &baseav1.ListDebtsRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()})
	wantRefusal(t, err, "denied_used_up")

	nameOnly := grant(t, gw, "bank-a", maria, 5, 0, baseav1.Field_FIELD_NAME)
	_, err = gw.ListDebts(ctx, &baseav1.ListDebtsRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: nameOnly.GetToken()})
	wantRefusal(t, err, "denied_wrong_field")
	_, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: joao, GrantToken: nameOnly.GetToken()})
	wantRefusal(t, err, "denied_wrong_cpf")
	_, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-b"), Cpf: maria, GrantToken: nameOnly.GetToken()})
	wantRefusal(t, err, "denied_wrong_partner")
	if _, err := gw.RevokeGrant(ctx, &baseav1.RevokeGrantRequest{Context: ctxFor("bank-b"), GrantId: nameOnly.GetGrantId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("another partner revoked the grant: %v", err)
	}
	if _, err := gw.RevokeGrant(ctx, &baseav1.RevokeGrantRequest{Context: ctxFor("bank-a"), GrantId: nameOnly.GetGrantId()}); err != nil {
		t.Fatal(err)
	}
	_, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: nameOnly.GetToken()})
	wantRefusal(t, err, "denied_revoked")

	short := grant(t, gw, "bank-a", maria, 1, 1, baseav1.Field_FIELD_NAME)
	time.Sleep(1100 * time.Millisecond)
	_, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: short.GetToken()})
	wantRefusal(t, err, "denied_expired")
	for _, tok := range []string{"sgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not-a-token", ""} {
		_, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: tok})
		wantRefusal(t, err, "denied_unknown_grant")
	}

	// Bad requests are InvalidArgument with a clear message; unknown CPFs NotFound.
	bad := []*baseav1.RequestGrantRequest{
		{Context: ctxFor("bank-a"), Cpf: maria, Purpose: baseav1.Purpose_PURPOSE_COLLECTION, Reason: "too short", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}},
		{Context: ctxFor("bank-a"), Cpf: maria, Reason: "a long enough reason", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}},
		{Context: ctxFor("bank-a"), Cpf: maria, Purpose: baseav1.Purpose_PURPOSE_COLLECTION, Reason: "a long enough reason"},
		{Context: ctxFor("bank-a"), Cpf: maria, Purpose: baseav1.Purpose_PURPOSE_COLLECTION, Reason: "a long enough reason", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}, TtlSeconds: 600},
		{Context: ctxFor("bank-a"), Cpf: maria, Purpose: baseav1.Purpose_PURPOSE_COLLECTION, Reason: "a long enough reason", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}, MaxUses: 99},
		{Context: ctxFor("bank-a"), Cpf: "123.456.789-00", Purpose: baseav1.Purpose_PURPOSE_COLLECTION, Reason: "a long enough reason", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}},
		{Context: ctxFor(""), Cpf: maria, Purpose: baseav1.Purpose_PURPOSE_COLLECTION, Reason: "a long enough reason", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}},
	}
	for i, r := range bad {
		if _, err := gw.RequestGrant(ctx, r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad request %d: want InvalidArgument, got %v", i, err)
		}
	}
	unknown := string(cpf.Complete("123456789"))
	_, err = gw.RequestGrant(ctx, &baseav1.RequestGrantRequest{Context: ctxFor("bank-a"), Cpf: unknown, Purpose: baseav1.Purpose_PURPOSE_COLLECTION,
		Reason: "a long enough reason", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown CPF: want NotFound, got %v", err)
	}

	// Every attempt above, allowed or refused, is in the audit log.
	logs, err := e.auditor(addr).ListAccessLogs(ctx, &baseav1.ListAccessLogsRequest{Cpf: maria, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	count := map[baseav1.Outcome]int{}
	for _, en := range logs.GetEntries() {
		count[en.GetOutcome()]++
		if en.GetOutcome() == baseav1.Outcome_OUTCOME_AUDIT_READ {
			continue // this very listing, recorded as strata-audit's read
		}
		if en.GetCpf() != maria || en.GetCaller() != "gateway" || en.GetClientIp() != "203.0.113.7" {
			t.Fatalf("entry lacks who/what/where: %+v", en)
		}
	}
	want := map[baseav1.Outcome]int{
		baseav1.Outcome_OUTCOME_GRANT_ISSUED: 3, baseav1.Outcome_OUTCOME_ALLOWED: 2, baseav1.Outcome_OUTCOME_DENIED_USED_UP: 1,
		baseav1.Outcome_OUTCOME_DENIED_WRONG_FIELD: 1, baseav1.Outcome_OUTCOME_DENIED_WRONG_PARTNER: 1, baseav1.Outcome_OUTCOME_GRANT_REVOKED: 1,
		baseav1.Outcome_OUTCOME_DENIED_REVOKED: 1, baseav1.Outcome_OUTCOME_DENIED_EXPIRED: 1, baseav1.Outcome_OUTCOME_DENIED_UNKNOWN_GRANT: 3,
		baseav1.Outcome_OUTCOME_AUDIT_READ: 1,
	}
	for o, n := range want {
		if count[o] != n {
			t.Errorf("audit outcome %s: %d entries, want %d (all: %v)", o, count[o], n, count)
		}
	}
	hist, err := e.auditor(addr).GetAccessHistory(ctx, &baseav1.GetAccessHistoryRequest{Cpf: maria})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.GetEntries()) != 5 { // 3 grants issued + 2 allowed reads
		t.Fatalf("access history has %d entries, want 5", len(hist.GetEntries()))
	}
}

func TestOnlyAllowedIdentitiesGetIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr, _ := e.start()
	ctx := testenv.Context(t)
	req := &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: "x"}
	if _, err := e.people(addr, "intruder").GetPerson(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unknown identity: want PermissionDenied, got %v", err)
	}
	if _, err := e.people(addr, "strata-audit").GetPerson(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("auditor reading people: want PermissionDenied, got %v", err)
	}
	if _, err := e.people(addr, "gateway").UpsertPerson(ctx, &baseav1.UpsertPersonRequest{Cpf: maria, Name: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("gateway writing people: want PermissionDenied, got %v", err)
	}
	// A certificate from another CA, and no certificate at all, never connect.
	other := newEnv(t)
	if _, err := other.people(addr, "gateway").GetPerson(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("foreign CA: want a failed handshake (Unavailable), got %v", err)
	}
}

func TestNoAuditRowNoData(t *testing.T) {
	t.Parallel()
	e, _, _, gw := seeded(t)
	ctx := testenv.Context(t)
	g := grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)

	e.admin("REVOKE INSERT ON audit_log FROM " + "strata_basea_app")
	// A grant is stored with its audit entry or not at all (one statement).
	grantsBefore := countGrants(e)
	if g, err := gw.RequestGrant(ctx, &baseav1.RequestGrantRequest{Context: ctxFor("bank-a"), Cpf: maria,
		Purpose: baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS, Reason: "loan application 4711", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}}); err == nil {
		t.Fatalf("a grant was issued without an audit entry: %+v", g)
	}
	if n := countGrants(e); n != grantsBefore {
		t.Fatalf("a grant whose audit entry failed was stored (%d grants, %d before)", n, grantsBefore)
	}
	resp, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()})
	if err == nil || resp != nil {
		t.Fatalf("data returned without an audit entry: %+v", resp)
	}
	if status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "Maria") {
		t.Fatalf("want a clean Unavailable, got %v", err)
	}
	e.admin("GRANT INSERT ON audit_log TO strata_basea_app")
	// The failed attempt did not consume the grant's single use.
	resp, err = gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()})
	if err != nil || resp.GetPerson().GetName() == "" {
		t.Fatalf("read after restoring the audit right: %v", err)
	}
}

// countGrants counts the stored grants, as the superuser.
func countGrants(e *env) int64 {
	e.t.Helper()
	ctx := testenv.Context(e.t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM grants`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestAppRoleCannotAlterAuditRows(t *testing.T) {
	t.Parallel()
	e, addr, _, _ := seeded(t)
	grant(t, e.people(addr, "gateway"), "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	ctx := testenv.Context(t)
	conn, err := pgx.Connect(ctx, e.appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		"UPDATE audit_log SET reason = 'covered up'",
		"DELETE FROM audit_log",
		"TRUNCATE audit_log",
		"DELETE FROM audit_chain",
		"UPDATE audit_checkpoints SET seq = 0",
	} {
		if _, err := conn.Exec(ctx, sql); err == nil {
			t.Errorf("application role could run %q", sql)
		}
	}
	// Even the owner is stopped by the trigger.
	admin := e.adminConn(ctx)
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "UPDATE audit_log SET reason = 'covered up'"); err == nil {
		t.Error("the owner could update audit rows")
	}
}

func TestDumpRevealsNoCPFNameOrAddress(t *testing.T) {
	t.Parallel()
	e, addr, _, _ := seeded(t)
	g := grant(t, e.people(addr, "gateway"), "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME)
	ctx := testenv.Context(t)
	if _, err := e.people(addr, "gateway").GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()}); err != nil {
		t.Fatal(err)
	}
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	// Published events leave the outbox (their bodies carry the CPF).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d published events still in the outbox", n)
		}
	}
	// Every table, in text (bytea as hex) and in binary (bytea as raw bytes).
	rows, err := conn.Query(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 8 {
		t.Fatalf("only %d tables found: %v", len(tables), tables)
	}
	var dump bytes.Buffer
	for _, table := range tables {
		for _, format := range []string{"text", "binary"} {
			if _, err := conn.PgConn().CopyTo(ctx, &dump, "COPY "+table+" TO STDOUT (FORMAT "+format+")"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dump.Len() < 1000 {
		t.Fatalf("dump suspiciously small: %d bytes", dump.Len())
	}
	for _, secret := range []string{maria, cpf.CPF(maria).Formatted(), joao, "Maria", "Aparecida", "Flores", "Paulista", "Banco Exemplo", "CT-1", g.GetToken()} {
		if bytes.Contains(dump.Bytes(), []byte(secret)) || bytes.Contains(dump.Bytes(), []byte(hex.EncodeToString([]byte(secret)))) {
			t.Errorf("database dump contains %q in clear", secret)
		}
	}
}

func TestKeyRotationAndReencryption(t *testing.T) {
	t.Parallel()
	e, _, stop, _ := seeded(t)
	stop()

	k1 := e.vars["BASEA_DATA_KEYS"]
	k2 := "2:" + crypto.NewKey()
	e.vars["BASEA_DATA_KEYS"] = k1 + "," + k2
	addr, stop := e.start()
	gw := e.people(addr, "gateway")
	read := func(gw baseav1.PeopleServiceClient) {
		t.Helper()
		g := grant(t, gw, "bank-a", maria, 1, 0, baseav1.Field_FIELD_NAME, baseav1.Field_FIELD_ADDRESS, baseav1.Field_FIELD_DEBTS)
		resp, err := gw.GetPerson(testenv.Context(t), &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: g.GetToken()})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetPerson().GetName() != "Maria Aparecida da Silva" || resp.GetPerson().GetAddress().GetStreet() != "Rua das Flores" || len(resp.GetPerson().GetDebts()) != 3 {
			t.Fatalf("unexpected person after rotation: %+v", resp.GetPerson())
		}
	}
	read(gw) // old rows, key 1, read with both keys configured
	stop()

	vars := e.toolVars()
	var out bytes.Buffer
	if err := app.RunReencrypt(testenv.Context(t), config.Map(vars), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "people  2/2 (100%)") || !strings.Contains(out.String(), "debts   3/3 (100%)") {
		t.Fatalf("progress not reported: %q", out.String())
	}
	ctx := testenv.Context(t)
	conn := e.adminConn(ctx)
	defer conn.Close(ctx)
	var old int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM people WHERE key_version <> 2) + (SELECT count(*) FROM debts WHERE key_version <> 2)").Scan(&old); err != nil || old != 0 {
		t.Fatalf("%d rows still under key 1 (%v)", old, err)
	}
	e.vars["BASEA_DATA_KEYS"] = k2 // key 1 retired
	addr, _ = e.start()
	read(e.people(addr, "gateway"))
}

func TestDebtSummaryLeavesThroughTheOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testenv.Context(t)
	mq, err := amqp.Dial(ctx, amqp.Config{URL: e.vars["BASEA_AMQP_URL"], Exchange: e.vars["BASEA_AMQP_EXCHANGE"]})
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Close()
	q := amqp.Queue{Name: testenv.UniqueName(t, "q"), Bindings: []string{eventtypes.DebtSummaryChanged}, Exchange: e.vars["BASEA_AMQP_EXCHANGE"]}
	ch, err := mq.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := q.Declare(ch); err != nil {
		t.Fatal(err)
	}
	e.startSeeded()
	var last eventsv1.DebtSummaryChanged
	got := 0
	deadline := time.Now().Add(15 * time.Second)
	for got < 3 && time.Now().Before(deadline) {
		msg, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		got++
		if err := proto.Unmarshal(msg.Body, &last); err != nil || msg.MessageId == "" {
			t.Fatalf("bad event: %v", err)
		}
	}
	if got != 3 {
		t.Fatalf("%d debt.summary.changed events, want 3 (one per debt written)", got)
	}
	// Two open debts of 100.00 and 200.00; the paid one does not count.
	if last.GetCpf() != maria || last.GetOpenCount() != 2 || last.GetOpenAmountCents() != 30000 || last.GetVersion() != 3 {
		t.Fatalf("summary wrong: %+v", &last)
	}
}

var _ = context.Background

// basea-seed adds the synthetic people 0..N-1 and, run again, leaves them
// as they are.
func TestSeedAddsTheSyntheticPeopleOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vars := e.toolVars()
	for range 2 {
		var out bytes.Buffer
		if err := app.RunSeed(testenv.Context(t), config.Map(vars), []string{"-cpfs", "3"}, &out); err != nil {
			t.Fatalf("%v (output %q)", err, out.String())
		}
	}
	var n int64
	e.queryRow(`SELECT count(*) FROM people`, nil, &n)
	if n != 3 {
		t.Fatalf("%d synthetic people after two runs of -cpfs 3, want 3", n)
	}
}
