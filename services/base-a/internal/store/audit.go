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
	e = domain.AuditEntry{ID: r.EntryID, At: r.At, PartnerID: r.PartnerID, Caller: r.Caller, Purpose: r.Purpose,
		Reason: r.Reason, Fields: r.Fields, Outcome: r.Outcome, ClientIP: r.ClientIP, TraceID: r.TraceID, GrantID: r.GrantID}
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
}

// lowWaterWindow bounds the scan for unchained entries: an entry whose id
// is this far below the newest chained one would have to have stayed
// uncommitted for far longer than the statement timeout allows.
const lowWaterWindow = 100000

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
		rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit_log a
			LEFT JOIN audit_chain c ON c.audit_id = a.id
			WHERE c.audit_id IS NULL AND a.id > $1 ORDER BY a.id LIMIT 5000`, max(0, maxAudit-lowWaterWindow))
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
		// Checkpoint when the head moved and the last checkpoint is old.
		var lastSeq int64
		var lastAt time.Time
		err = tx.QueryRow(ctx, `SELECT seq, signed_at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &lastAt)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if seq > lastSeq && s.now().Sub(lastAt) >= o.CheckpointInterval {
			at := s.now().UTC().Truncate(time.Microsecond)
			if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signed_at, signature) VALUES ($1, $2, $3, $4)`,
				seq, prev, at, o.Keys.Sign(seq, prev, at)); err != nil {
				return err
			}
		}
		return nil
	})
	return chained, err
}

// Verify checks the chain from the checkpoint before fromSeq (or the start)
// to toSeq (or the end): every link, every checkpoint signature and hash, no
// gap, no truncation below the newest checkpoint, and no entry left
// unchained for longer than the grace period.
func (s *Store) Verify(ctx context.Context, o ChainOptions, fromSeq, toSeq int64) (domain.Verification, error) {
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	pub := o.Keys.PublicKey()
	v := domain.Verification{OK: true}
	bad := func(seq int64, problem string) {
		if v.OK {
			v.OK, v.FirstBadEntry, v.Problem = false, seq, problem
		}
	}
	err := s.run(func() error {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

		type checkpoint struct {
			hash []byte
			at   time.Time
			sig  []byte
		}
		cps := map[int64]checkpoint{}
		var maxCP int64
		rows, err := tx.Query(ctx, `SELECT seq, hash, signed_at, signature FROM audit_checkpoints ORDER BY seq`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var seq int64
			var c checkpoint
			if err := rows.Scan(&seq, &c.hash, &c.at, &c.sig); err != nil {
				rows.Close()
				return err
			}
			cps[seq] = c
			maxCP = max(maxCP, seq)
		}
		rows.Close()

		start, prev := int64(1), make([]byte, 32)
		// After a retention purge the chain starts at the purge's signed
		// checkpoint; the purge record must itself be signed.
		var through, entries int64
		var cutoff, purgedAt time.Time
		var purgeSig []byte
		err = tx.QueryRow(ctx, `SELECT through_seq, cutoff, purged_at, entries, signature FROM audit_purges
			ORDER BY through_seq DESC LIMIT 1`).Scan(&through, &cutoff, &purgedAt, &entries, &purgeSig)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			c, ok := cps[through]
			if !ok {
				bad(through, fmt.Sprintf("the checkpoint purge %d is anchored on is missing", through))
				return nil
			}
			if !audit.VerifyCheckpoint(pub, through, c.hash, c.at, c.sig) ||
				!audit.VerifyPurge(pub, through, c.hash, cutoff, purgedAt, entries, purgeSig) {
				bad(through, "purge record signature invalid")
				return nil
			}
			start, prev, v.PurgedThrough = through+1, c.hash, through
		}
		if fromSeq > 1 {
			for seq, c := range cps {
				if seq < fromSeq && seq+1 > start {
					if !audit.VerifyCheckpoint(pub, seq, c.hash, c.at, c.sig) {
						bad(seq, "checkpoint signature invalid")
						return nil
					}
					start, prev = seq+1, c.hash
				}
			}
		}
		q := `SELECT ` + auditColumns + `, c.seq, c.hash FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.audit_id WHERE c.seq >= $1`
		args := []any{start}
		if toSeq > 0 {
			q += ` AND c.seq <= $2`
			args = append(args, toSeq)
		}
		rows, err = tx.Query(ctx, q+` ORDER BY c.seq`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		expect, last := start, start-1
		for rows.Next() {
			var seq int64
			var stored []byte
			var r audit.Row
			var entryID, grantID *uuid.UUID
			var cpfEnc []byte
			var auditID *int64
			var at *time.Time
			var partner, caller, purpose, reason, outcome, ip, trace *string
			if err := rows.Scan(&auditID, &entryID, &at, &partner, &caller, &r.CPFIndex, &cpfEnc, &purpose, &reason,
				&r.Fields, &outcome, &ip, &trace, &grantID, &seq, &stored); err != nil {
				return err
			}
			if seq != expect {
				bad(expect, fmt.Sprintf("entries %d to %d are missing from the chain", expect, seq-1))
				return nil
			}
			expect, last = seq+1, seq
			if auditID == nil {
				bad(seq, "entry deleted")
				return nil
			}
			r.AuditID, r.EntryID, r.At = *auditID, entryID.String(), at.UTC()
			r.PartnerID, r.Caller, r.Purpose, r.Reason, r.Outcome, r.ClientIP, r.TraceID = *partner, *caller, *purpose, *reason, *outcome, *ip, *trace
			if grantID != nil {
				r.GrantID = grantID.String()
			}
			prev = o.Keys.Link(prev, seq, audit.Digest(r))
			if !hmacEqual(prev, stored) {
				bad(seq, "entry altered")
				return nil
			}
			v.CheckedEntries++
			if c, ok := cps[seq]; ok {
				if !audit.VerifyCheckpoint(pub, seq, c.hash, c.at, c.sig) || !hmacEqual(c.hash, prev) {
					bad(seq, "checkpoint does not match the chain")
					return nil
				}
				v.CheckpointsVerified++
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if toSeq == 0 && maxCP > last {
			bad(last+1, fmt.Sprintf("log truncated: checkpoint %d is signed but the chain ends at %d", maxCP, last))
			return nil
		}
		if toSeq == 0 {
			var entryID uuid.UUID
			err := tx.QueryRow(ctx, `SELECT a.entry_id FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id
				WHERE c.audit_id IS NULL AND a.at < $1 ORDER BY a.id LIMIT 1`, s.now().Add(-o.Grace)).Scan(&entryID)
			if err == nil {
				bad(last+1, "entry "+entryID.String()+" was never chained")
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		return nil
	})
	return v, err
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
