package app_test

import (
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// The chainer's regular pass looks for unchained entries among the newest
// ids only; an entry that commits after many newer ones were chained is
// found by the sweep over the whole low-water window, and the chain still
// verifies.
func TestAnEntryCommittedLateFarBelowIsStillChained(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testenv.Context(t)
	st, akeys := e.openStore(t, "chainer-test")
	pool := st.Pool()
	o := store.ChainOptions{Keys: akeys, CheckpointInterval: time.Millisecond, SweepEvery: 300 * time.Millisecond}
	const insert = `INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, cpf_enc, purpose, reason, fields, outcome, client_ip, trace_id, grant_id)
		SELECT gen_random_uuid(), now(), 'bank-a', 'gateway', NULL, NULL, 'credit_analysis', 'loan application ' || g, ARRAY['name'],
			'allowed', '203.0.113.7', '', NULL FROM generate_series(1, $1) g`
	chainAll := func() {
		t.Helper()
		for {
			n, err := st.ChainPending(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}

	// An entry takes its id now and commits only after 12,000 newer ones
	// (more than two regular windows) have been chained.
	late := e.adminConn(ctx)
	defer late.Close(ctx)
	tx, err := late.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lateID int64
	if err := tx.QueryRow(ctx, insert+` RETURNING id`, 1).Scan(&lateID); err != nil {
		t.Fatal(err)
	}
	e.admin(insert, 12000)
	chainAll()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	chained := func() bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_chain WHERE audit_id = $1`, lateID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	for deadline := time.Now().Add(10 * time.Second); !chained(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("entry %d, committed after 12,000 newer ones were chained, was never chained", lateID)
		}
		if _, err := st.ChainPending(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	var unchained int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id WHERE c.audit_id IS NULL`).Scan(&unchained); err != nil || unchained != 0 {
		t.Fatalf("%d entries left unchained (%v)", unchained, err)
	}
	for range 3 { // the tree catches up, a checkpoint and a signed head over the whole log
		time.Sleep(5 * time.Millisecond)
		chainAll()
	}
	o.Grace = time.Nanosecond
	if v, err := st.Verify(ctx, o, 0, 0); err != nil || !v.OK || v.CheckedEntries != 12001 {
		t.Fatalf("the chain does not verify after the late entry: %+v %v", v, err)
	}
}
