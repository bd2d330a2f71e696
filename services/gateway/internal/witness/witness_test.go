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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/checkpoint"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/gateway/internal/backend"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
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

// logName is the origin of Base A's heads, the name of its key.
const logName = "strata-audit-base-a"

// keys makes a fresh signing key for the log and its verifier.
func keys(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, logName)
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
	h, err := checkpoint.Sign(s, logName, size, root, time.UnixMicro(1))
	if err != nil {
		t.Fatal(err)
	}
	return h.Note
}

// fixture is one witness test's world: a store on a fresh gateway
// database, the log's signing key and its verifier, and an honest log of
// 20 entries. The witness's proofs come from served (the honest log unless
// a test serves another) or fail with proveErr when it is set.
type fixture struct {
	ctx      context.Context
	st       *store.Store
	pool     *pgxpool.Pool
	signer   note.Signer
	verifier note.Verifier
	log      *memLog
	served   *memLog
	proveErr error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ctx: testenv.Context(t), log: build(t, 20, -1)}
	f.st, f.pool = storetest.New(t)
	f.signer, f.verifier = keys(t)
	f.served = f.log
	return f
}

// witness is a witness on the fixture's store and verifier.
func (f *fixture) witness() *witness.Witness {
	return &witness.Witness{Store: f.st, Verifier: f.verifier, Logger: logging.Discard(),
		Prove: func(_ context.Context, o, n int64) (tlog.TreeProof, error) {
			if f.proveErr != nil {
				return nil, f.proveErr
			}
			return tlog.ProveTree(n, o, f.served)
		}}
}

// alarms is the number of alarms the witness has recorded.
func (f *fixture) alarms(t *testing.T) int64 {
	t.Helper()
	n, err := f.st.WitnessAlarms(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// head is the honest log's head of size, signed with the log's key.
func (f *fixture) head(t *testing.T, size int64) []byte {
	return head(t, f.signer, f.log, size)
}

// observe hands w a signed head and fails the test if w returns an error.
func (f *fixture) observe(t *testing.T, w *witness.Witness, msg []byte) {
	t.Helper()
	if err := w.Observe(f.ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// The witness keeps every head proven consistent with the last one kept,
// in the database and in its append-only file, and raises an alarm —
// keeping nothing — for a forked, rewritten, older-inconsistent or forged
// head.
func TestWitnessKeepsConsistentHeadsAndAlarmsOnRewrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	forked := build(t, 20, 4) // a database administrator rewrote entries 5..
	file := filepath.Join(t.TempDir(), "witness", "audit-heads.log")
	w := f.witness()
	w.File = file
	f.observe(t, w, f.head(t, 3))
	f.observe(t, w, f.head(t, 7))
	f.observe(t, w, f.head(t, 7)) // redelivered
	f.observe(t, w, f.head(t, 5)) // late, consistent
	if n := f.alarms(t); n != 0 {
		t.Fatalf("%d alarms for honest heads", n)
	}
	// Rewritten entries re-signed: a head of a larger tree that does not extend the last.
	f.served = forked
	f.observe(t, w, head(t, f.signer, forked, 9))
	// The same size with another root; an older head that does not match.
	f.observe(t, w, head(t, f.signer, forked, 7))
	f.observe(t, w, head(t, f.signer, forked, 6))
	// A head signed with another key.
	forger, _ := keys(t)
	f.observe(t, w, head(t, forger, f.log, 12))
	if n := f.alarms(t); n != 4 {
		t.Fatalf("%d alarms, want 4 (rewrite, fork, older inconsistent, forged)", n)
	}
	f.served = f.log
	f.observe(t, w, f.head(t, 12))
	last, err := f.st.LastWitnessedHead(f.ctx)
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
		if _, err := witness.Open(raw, f.verifier); err != nil {
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
	f := newFixture(t)
	var kinds []string
	w := f.witness()
	w.OnAlarm = func(kind string) { kinds = append(kinds, kind) }
	f.observe(t, w, f.head(t, 3))
	for _, transient := range []error{
		backend.ErrUnavailable, backend.ErrBusy, fmt.Errorf("gateway->base-a: %w", breaker.ErrOpen),
		status.Error(codes.Unavailable, "base A unavailable"), status.Error(codes.DeadlineExceeded, "deadline exceeded"),
		context.DeadlineExceeded,
	} {
		f.proveErr = transient
		if err := w.Observe(f.ctx, f.head(t, 7)); err == nil {
			t.Fatalf("%v: not retried", transient)
		}
	}
	if n := f.alarms(t); n != 0 || len(kinds) != 0 {
		t.Fatalf("passing faults raised %d alarms (%v)", n, kinds)
	}
	for i, refusal := range []error{
		status.Error(codes.DataLoss, "audit data missing: tree hash 4 is missing"),
		status.Error(codes.NotFound, "no signed head covers size 9"),
	} {
		f.proveErr = refusal
		if err := w.Observe(f.ctx, f.head(t, int64(8+i))); err != nil {
			t.Fatalf("%v: requeued (%v) instead of an alarm", refusal, err)
		}
	}
	if n := f.alarms(t); n != 2 || len(kinds) != 2 || kinds[0] != "proof_refused" {
		t.Fatalf("want 2 proof_refused alarms, got %d recorded, kinds %v", n, kinds)
	}
	// Nothing unproven was kept; once Base A proves again, heads are kept.
	f.proveErr = nil
	f.observe(t, w, f.head(t, 12))
	if last, err := f.st.LastWitnessedHead(f.ctx); err != nil || last.Size != 12 {
		t.Fatalf("last witnessed head: %+v %v", last, err)
	}
}

// Heads older than the dense window are thinned to the largest of each UTC
// day; the newest head is always kept, and a late head whose size was
// thinned away is still checked (against the newest) without an alarm.
func TestThinKeepsTheLastHeadOfEachOldDayAndTheNewest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, pool := f.ctx, f.pool
	w := f.witness()
	for size := int64(1); size <= 10; size++ {
		f.observe(t, w, f.head(t, size))
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
		out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
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
	f.observe(t, w, f.head(t, 2))
	f.observe(t, w, f.head(t, 12))
	if n := f.alarms(t); n != 0 {
		t.Fatalf("%d alarms after thinning", n)
	}
}
