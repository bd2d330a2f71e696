package witness_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/store/storetest"
	"github.com/strata-bureau/strata/services/gateway/internal/witness"
)

// memLog is a Merkle log in memory, as Base A builds it.
type memLog struct{ hashes []tlog.Hash }

func (m *memLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memLog) add(t *testing.T, n int64, tag string) {
	hs, err := tlog.StoredHashes(n, []byte(fmt.Sprintf("entry %d %s", n, tag)), m)
	if err != nil {
		t.Fatal(err)
	}
	m.hashes = append(m.hashes, hs...)
}

func build(t *testing.T, size int64, forkAt int64) *memLog {
	m := &memLog{}
	for n := int64(0); n < size; n++ {
		tag := ""
		if forkAt >= 0 && n >= forkAt {
			tag = "rewritten"
		}
		m.add(t, n, tag)
	}
	return m
}

// keys makes a fresh signing key for the log and its verifier.
func keys(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, witness.LogName)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifier
}

func head(t *testing.T, s note.Signer, m *memLog, size int64) []byte {
	root, err := tlog.TreeHash(size, m)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\ntime 1\n", witness.LogName, size, base64.StdEncoding.EncodeToString(root[:]))}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// The witness keeps every head proven consistent with the last one kept,
// in the database and in its append-only file, and raises an alarm —
// keeping nothing — for a forked, rewritten, older-inconsistent or forged
// head.
func TestWitnessKeepsConsistentHeadsAndAlarmsOnRewrites(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	st, _ := storetest.New(t)
	signer, verifier := keys(t)
	honest := build(t, 20, -1)
	forked := build(t, 20, 4) // a database administrator rewrote entries 5..
	served := honest
	file := filepath.Join(t.TempDir(), "witness", "audit-heads.log")
	w := &witness.Witness{Store: st, Verifier: verifier, File: file, Logger: logging.Discard(),
		Prove: func(_ context.Context, o, n int64) (tlog.TreeProof, error) { return tlog.ProveTree(n, o, served) }}
	alarms := func() int64 {
		n, err := st.WitnessAlarms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	observe := func(msg []byte) {
		t.Helper()
		if err := w.Observe(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	observe(head(t, signer, honest, 3))
	observe(head(t, signer, honest, 7))
	observe(head(t, signer, honest, 7)) // redelivered
	observe(head(t, signer, honest, 5)) // late, consistent
	if n := alarms(); n != 0 {
		t.Fatalf("%d alarms for honest heads", n)
	}
	// Rewritten entries re-signed: a head of a larger tree that does not extend the last.
	served = forked
	observe(head(t, signer, forked, 9))
	// The same size with another root; an older head that does not match.
	observe(head(t, signer, forked, 7))
	observe(head(t, signer, forked, 6))
	// A head signed with another key.
	forger, _ := keys(t)
	observe(head(t, forger, honest, 12))
	if n := alarms(); n != 4 {
		t.Fatalf("%d alarms, want 4 (rewrite, fork, older inconsistent, forged)", n)
	}
	served = honest
	observe(head(t, signer, honest, 12))
	last, err := st.LastWitnessedHead(ctx)
	if err != nil || last.Size != 12 {
		t.Fatalf("last witnessed head: %+v %v", last, err)
	}
	lines := readLines(t, file)
	if len(lines) != 4 { // 3, 7, 5, 12
		t.Fatalf("witness file has %d heads, want 4", len(lines))
	}
	for _, l := range lines {
		raw, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := witness.Open(raw, verifier); err != nil {
			t.Fatalf("a kept head does not verify: %v", err)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// A consistency proof Base A refuses for good (it answers DataLoss: a
// database administrator deleted tree hashes) used to be returned as an
// error, so the head was requeued until it was dead-lettered and nobody
// was alarmed. It is an alarm now (logged, recorded, counted), and the
// message is settled. A passing fault — the gateway's pool without a
// replica (a plain error), Base A unavailable — is still retried, without
// an alarm.
func TestRefusedProofIsAnAlarmPassingFaultsAreRetried(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	st, _ := storetest.New(t)
	signer, verifier := keys(t)
	log := build(t, 20, -1)
	var proveErr error
	var kinds []string
	w := &witness.Witness{Store: st, Verifier: verifier, Logger: logging.Discard(),
		OnAlarm: func(kind string) { kinds = append(kinds, kind) },
		Prove: func(_ context.Context, o, n int64) (tlog.TreeProof, error) {
			if proveErr != nil {
				return nil, proveErr
			}
			return tlog.ProveTree(n, o, log)
		}}
	alarms := func() int64 {
		n, err := st.WitnessAlarms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := w.Observe(ctx, head(t, signer, log, 3)); err != nil {
		t.Fatal(err)
	}
	for _, transient := range []error{
		backend.ErrUnavailable, backend.ErrBusy, fmt.Errorf("gateway->base-a: %w", breaker.ErrOpen),
		status.Error(codes.Unavailable, "base A unavailable"), status.Error(codes.DeadlineExceeded, "deadline exceeded"),
		context.DeadlineExceeded,
	} {
		proveErr = transient
		if err := w.Observe(ctx, head(t, signer, log, 7)); err == nil {
			t.Fatalf("%v: not retried", transient)
		}
	}
	if n := alarms(); n != 0 || len(kinds) != 0 {
		t.Fatalf("passing faults raised %d alarms (%v)", n, kinds)
	}
	for i, refusal := range []error{
		status.Error(codes.DataLoss, "audit data missing: tree hash 4 is missing"),
		status.Error(codes.NotFound, "no signed head covers size 9"),
	} {
		proveErr = refusal
		if err := w.Observe(ctx, head(t, signer, log, int64(8+i))); err != nil {
			t.Fatalf("%v: requeued (%v) instead of an alarm", refusal, err)
		}
	}
	if n := alarms(); n != 2 || len(kinds) != 2 || kinds[0] != "proof_refused" {
		t.Fatalf("want 2 proof_refused alarms, got %d recorded, kinds %v", n, kinds)
	}
	// Nothing unproven was kept; once Base A proves again, heads are kept.
	proveErr = nil
	if err := w.Observe(ctx, head(t, signer, log, 12)); err != nil {
		t.Fatal(err)
	}
	if last, err := st.LastWitnessedHead(ctx); err != nil || last.Size != 12 {
		t.Fatalf("last witnessed head: %+v %v", last, err)
	}
}

// Heads older than the dense window are thinned to the largest of each UTC
// day; the newest head is always kept, and a late head whose size was
// thinned away is still checked (against the newest) without an alarm.
func TestThinKeepsTheLastHeadOfEachOldDayAndTheNewest(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	st, pool := storetest.New(t)
	signer, verifier := keys(t)
	log := build(t, 20, -1)
	w := &witness.Witness{Store: st, Verifier: verifier, Logger: logging.Discard(),
		Prove: func(_ context.Context, o, n int64) (tlog.TreeProof, error) { return tlog.ProveTree(n, o, log) }}
	for size := int64(1); size <= 10; size++ {
		if err := w.Observe(ctx, head(t, signer, log, size)); err != nil {
			t.Fatal(err)
		}
	}
	// Sizes 1–4 arrived ten days ago, 5–7 nine days ago (each at a different
	// hour of the day), 8–10 now.
	if _, err := pool.Exec(ctx, `UPDATE audit_witness_heads
		SET received_at = date_trunc('day', now()) - CASE WHEN size <= 4 THEN interval '10 days' ELSE interval '9 days' END + size * interval '1 hour'
		WHERE size <= 7`); err != nil {
		t.Fatal(err)
	}
	kept := func() []int64 {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT size FROM audit_witness_heads ORDER BY size`)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	w.Thin(ctx, 7*24*time.Hour)
	if got, want := fmt.Sprint(kept()), "[4 7 8 9 10]"; got != want {
		t.Fatalf("kept heads %s, want %s", got, want)
	}
	// Everything old, the newest included: the newest survives.
	if _, err := pool.Exec(ctx, `UPDATE audit_witness_heads SET received_at = now() - interval '30 days'`); err != nil {
		t.Fatal(err)
	}
	w.Thin(ctx, 7*24*time.Hour)
	if got, want := fmt.Sprint(kept()), "[10]"; got != want {
		t.Fatalf("kept heads %s, want %s", got, want)
	}
	if err := w.Observe(ctx, head(t, signer, log, 2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Observe(ctx, head(t, signer, log, 12)); err != nil {
		t.Fatal(err)
	}
	if n, err := st.WitnessAlarms(ctx); err != nil || n != 0 {
		t.Fatalf("alarms after thinning: %d %v", n, err)
	}
}
