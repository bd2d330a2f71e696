package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

const auditColumns = `a.id, a.entry_id, a.at, a.partner_id, a.caller, a.cpf_index, a.cpf_enc, a.purpose, a.reason,
	a.fields, a.outcome, a.client_ip, a.trace_id, a.grant_id`

func (s *Store) scanEntry(row pgx.Row, seq *int64) (domain.AuditEntry, audit.Row, error) {
	var r audit.Row
	var cpfEnc []byte
	var grantID *uuid.UUID
	var entryID uuid.UUID
	var e domain.AuditEntry
	dest := []any{&r.AuditID, &entryID, &r.At, &r.PartnerID, &r.Caller, &r.CPFIndex, &cpfEnc, &r.Purpose, &r.Reason,
		&r.Fields, &r.Outcome, &r.ClientIP, &r.TraceID, &grantID}
	if seq != nil {
		dest = append(dest, seq)
	}
	if err := row.Scan(dest...); err != nil {
		return e, r, err
	}
	r.EntryID = entryID.String()
	r.At = r.At.UTC()
	if grantID != nil {
		r.GrantID = grantID.String()
	}
	e = domain.AuditEntry{ID: r.EntryID, At: r.At, PartnerID: r.PartnerID, Caller: r.Caller, AccessDetail: r.AccessDetail}
	if cpfEnc != nil {
		if pt, _, err := s.keys.Decrypt(cpfEnc, aad("audit.cpf|", r.CPFIndex)); err == nil {
			e.CPF = string(pt)
		}
	}
	if seq != nil {
		e.Seq = *seq
	}
	return e, r, nil
}

// ListAudit returns entries matching f in id order, plus the id to continue
// after (0 when there is no more).
func (s *Store) ListAudit(ctx context.Context, f domain.AuditFilter) ([]domain.AuditEntry, int64, error) {
	q := `SELECT ` + auditColumns + `, coalesce(c.seq, 0) FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id WHERE a.id > $1`
	args := []any{f.AfterID}
	add := func(cond string, v any) {
		args = append(args, v)
		q += fmt.Sprintf(" AND "+cond, len(args))
	}
	if f.CPF != "" {
		add("a.cpf_index = $%d", s.cpfIndex(f.CPF))
	}
	if f.PartnerID != "" {
		add("a.partner_id = $%d", f.PartnerID)
	}
	if f.Purpose != "" {
		add("a.purpose = $%d", f.Purpose)
	}
	if f.Outcome != "" {
		add("a.outcome = $%d", f.Outcome)
	}
	if !f.From.IsZero() {
		add("a.at >= $%d", f.From)
	}
	if !f.To.IsZero() {
		add("a.at < $%d", f.To)
	}
	args = append(args, f.Limit+1)
	q += fmt.Sprintf(" ORDER BY a.id LIMIT $%d", len(args))
	var out []domain.AuditEntry
	var ids []int64
	err := s.run(func() error {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			e, r, err := s.scanEntry(rows, &seq)
			if err != nil {
				return err
			}
			out = append(out, e)
			ids = append(ids, r.AuditID)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = ids[f.Limit-1]
	}
	return out, next, nil
}

// ChainOptions configure the chainer.
type ChainOptions struct {
	Keys *audit.Keys
	// CheckpointInterval signs the chain head at most this often when new
	// entries were chained (default 10s).
	CheckpointInterval time.Duration
	// Grace is how old an entry must be before Verify calls it unchained
	// (default 30s; the chainer runs every few hundred milliseconds).
	Grace time.Duration
	// Budget bounds the entries one Verify call checks (default 1,000,000).
	Budget int64
	// HMACOnly skips the Merkle tree and its heads: only for the benchmark
	// that prices the tree against the chain alone.
	HMACOnly bool
	// SweepEvery is how often a pass looks for unchained entries over the
	// whole low-water window instead of the newest chainWindow ids
	// (default 5s; well within Grace).
	SweepEvery time.Duration
}

// lowWaterWindow bounds the scan for unchained entries: an entry whose id
// is this far below the newest chained one would have to have stayed
// uncommitted for far longer than the statement timeout allows.
const lowWaterWindow = 100000

// chainWindow bounds the scan of a regular pass: entries that commit later
// than this many newer ones are found by the next sweep. Scanning the
// whole low-water window every pass cost the database an anti-join over
// up to 100,000 entries four times a second, growing with the log (make
// abuse's session samples: the chainer's scan became Base A's busiest
// statement as the log grew).
const chainWindow = 5000

// sweepDue reports whether this pass should scan the whole low-water
// window, and if so starts the next period.
func (s *Store) sweepDue(every time.Duration) bool {
	if every <= 0 {
		every = 5 * time.Second
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if now := s.now(); s.lastSweep.IsZero() || now.Sub(s.lastSweep) >= every {
		s.lastSweep = now
		return true
	}
	return false
}

// ChainPending links every committed, unchained entry into the chain (in id
// order) and signs a checkpoint when due. Concurrent callers (replicas)
// serialise on an advisory lock; a caller that does not get it returns.
func (s *Store) ChainPending(ctx context.Context, o ChainOptions) (int, error) {
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	chained := 0
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(4242002)`).Scan(&got); err != nil || !got {
			return err
		}
		var seq, maxAudit int64
		prev := make([]byte, 32)
		err := tx.QueryRow(ctx, `SELECT seq, hash, audit_id FROM audit_chain ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev, &maxAudit)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		window := int64(chainWindow)
		if s.sweepDue(o.SweepEvery) {
			window = lowWaterWindow
		}
		rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit_log a
			LEFT JOIN audit_chain c ON c.audit_id = a.id
			WHERE c.audit_id IS NULL AND a.id > $1 ORDER BY a.id LIMIT 5000`, max(0, maxAudit-window))
		if err != nil {
			return err
		}
		var links [][]any
		for rows.Next() {
			_, r, err := s.scanEntry(rows, nil)
			if err != nil {
				rows.Close()
				return err
			}
			seq++
			prev = o.Keys.Link(prev, seq, audit.Digest(r))
			links = append(links, []any{seq, r.AuditID, prev})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(links) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_chain"}, []string{"seq", "audit_id", "hash"}, pgx.CopyFromRows(links)); err != nil {
				return err
			}
		}
		chained = len(links)
		// The Merkle tree follows the chain (and catches up with entries
		// chained before the log was verifiable, 5000 per pass).
		treeN := seq
		if !o.HMACOnly {
			if treeN, err = s.extendTree(ctx, tx, 5000); err != nil {
				return err
			}
		}
		// Checkpoint when the head moved and the last checkpoint is old;
		// the signed tree head of the same size goes with it.
		var lastSeq int64
		var lastAt time.Time
		err = tx.QueryRow(ctx, `SELECT seq, signed_at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &lastAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if seq > lastSeq && treeN == seq && s.now().Sub(lastAt) >= o.CheckpointInterval {
			at := s.now().UTC().Truncate(time.Microsecond)
			if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signed_at, signature) VALUES ($1, $2, $3, $4)`,
				seq, prev, at, o.Keys.Sign(seq, prev, at)); err != nil {
				return err
			}
			if !o.HMACOnly {
				if err := s.signHead(ctx, tx, o, seq, at); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return chained, err
}

func hmacEqual(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}
