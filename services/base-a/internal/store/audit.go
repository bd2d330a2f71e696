package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

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
	// Budget bounds the entries one Verify call checks (default 1,000,000).
	Budget int64
	// HMACOnly skips the Merkle tree and its heads: only for the benchmark
	// that prices the tree against the chain alone.
	HMACOnly bool
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

// Verify checks the log: every HMAC link and signed checkpoint, every
// Merkle leaf and stored tree hash against the signed tree heads, no gap,
// no truncation below the newest checkpoint or head, no entry left
// unchained past the grace period, and each grant's uses against its
// allowed entries. With fromSeq 0 it continues from the last verified
// state; fromSeq >= 1 starts over. It reads in pages (no long
// transaction, no connection held between pages) and stops after
// o.Budget entries (Incomplete): call again to continue. toSeq is ignored.
func (s *Store) Verify(ctx context.Context, o ChainOptions, fromSeq, _ int64) (domain.Verification, error) {
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.Budget <= 0 {
		o.Budget = 1_000_000
	}
	pub := o.Keys.PublicKey()
	hv, err := audit.NewVerifier(o.Keys.VerifierKey())
	if err != nil {
		return domain.Verification{}, err
	}
	v := domain.Verification{OK: true}
	bad := func(seq int64, problem string) {
		if v.OK {
			v.OK, v.FirstBadEntry, v.Problem = false, seq, problem
		}
	}
	q := func(fn func() error) error { return s.breaker.Run(fn) }

	// Where to start: a retention purge's anchor, or the last verified state.
	start, prev := int64(1), make([]byte, 32)
	var tree audit.State
	var through, entries int64
	var cutoff, purgedAt time.Time
	var purgeSig []byte
	err = q(func() error {
		return s.pool.QueryRow(ctx, `SELECT through_seq, cutoff, purged_at, entries, signature FROM audit_purges
			ORDER BY through_seq DESC LIMIT 1`).Scan(&through, &cutoff, &purgedAt, &entries, &purgeSig)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return v, err
	default:
		var cpHash, headNote []byte
		var cpAt time.Time
		var cpSig []byte
		err := q(func() error {
			return s.pool.QueryRow(ctx, `SELECT c.hash, c.signed_at, c.signature, h.note FROM audit_checkpoints c
				LEFT JOIN audit_heads h ON h.size = c.seq WHERE c.seq = $1`, through).Scan(&cpHash, &cpAt, &cpSig, &headNote)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			bad(through, fmt.Sprintf("the checkpoint purge %d is anchored on is missing", through))
			return v, nil
		}
		if err != nil {
			return v, err
		}
		if !audit.VerifyCheckpoint(pub, through, cpHash, cpAt, cpSig) ||
			!audit.VerifyPurge(pub, through, cpHash, cutoff, purgedAt, entries, purgeSig) {
			bad(through, "purge record signature invalid")
			return v, nil
		}
		h, err := audit.OpenHead(headNote, hv)
		if err != nil || h.Size != through {
			bad(through, "the signed tree head the purge is anchored on is missing or invalid")
			return v, nil
		}
		edge := map[int64]tlog.Hash{}
		idx := audit.EdgeIndexes(through)
		var hs []tlog.Hash
		if err := q(func() error { hs, err = (treeReader{ctx, s.pool}).ReadHashes(idx); return err }); err != nil {
			bad(through, "the tree hashes at the purge anchor are missing")
			return v, nil
		}
		for i, x := range idx {
			edge[x] = hs[i]
		}
		start, prev, v.PurgedThrough = through+1, cpHash, through
		tree = audit.State{Size: through, Root: h.Root, Edge: edge}
	}
	grantsFrom := time.Time{}
	if fromSeq == 0 {
		var size int64
		var root, edgeJSON, chainHash []byte
		var grantsAt time.Time
		err := q(func() error {
			return s.pool.QueryRow(ctx, `SELECT size, root, edge, chain_hash, grants_at FROM audit_verified WHERE id = 1`).
				Scan(&size, &root, &edgeJSON, &chainHash, &grantsAt)
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return v, err
		case size >= start-1:
			st := audit.State{Size: size}
			copy(st.Root[:], root)
			if err := json.Unmarshal(edgeJSON, &st.Edge); err == nil {
				start, prev, tree, grantsFrom = size+1, chainHash, st, grantsAt.Add(-10*time.Minute)
			}
		}
	}
	lv, err := audit.NewLogVerifier(hv, tree)
	if err != nil {
		bad(start, err.Error())
		return v, nil
	}

	last := start - 1
	for v.OK && v.CheckedEntries < o.Budget {
		page, err := s.ExportLog(ctx, last, 10000)
		if err != nil {
			return v, err
		}
		for _, n := range page.Heads {
			_, _ = lv.AddHead(n, "the log") // a bad one fails lv, which names the entry
		}
		var cps map[int64][3][]byte
		if len(page.Entries) > 0 {
			cps = map[int64][3][]byte{}
			lo, hi := page.Entries[0].Seq, page.Entries[len(page.Entries)-1].Seq
			err := q(func() error {
				rows, err := s.pool.Query(ctx, `SELECT c.seq, c.hash, k.signature, k.signed_at FROM audit_chain c
					LEFT JOIN audit_checkpoints k ON k.seq = c.seq WHERE c.seq BETWEEN $1 AND $2 ORDER BY c.seq`, lo, hi)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var seq int64
					var link, sig []byte
					var at *time.Time
					if err := rows.Scan(&seq, &link, &sig, &at); err != nil {
						return err
					}
					var atb []byte
					if at != nil {
						atb, _ = at.MarshalBinary()
					}
					cps[seq] = [3][]byte{link, sig, atb}
				}
				return rows.Err()
			})
			if err != nil {
				return v, err
			}
		}
		for _, e := range page.Entries {
			if !lv.Add(e) {
				break
			}
			c := cps[e.Seq]
			prev = o.Keys.Link(prev, e.Seq, audit.Digest(e.Row))
			if !hmacEqual(prev, c[0]) {
				bad(e.Seq, "entry altered")
				break
			}
			if c[1] != nil {
				var at time.Time
				_ = at.UnmarshalBinary(c[2])
				if !audit.VerifyCheckpoint(pub, e.Seq, prev, at, c[1]) {
					bad(e.Seq, "checkpoint does not match the chain")
					break
				}
				v.CheckpointsVerified++
			}
			v.CheckedEntries++
			last = e.Seq
		}
		if !lv.OK() || !page.More {
			break
		}
	}
	res := lv.Finish()
	if !res.OK {
		if v.OK || res.FirstBadEntry < v.FirstBadEntry {
			v.OK, v.FirstBadEntry, v.Problem = false, res.FirstBadEntry, res.Problem
		}
	}
	v.TreeSize = last
	v.Incomplete = v.OK && v.CheckedEntries >= o.Budget
	if !v.OK || v.Incomplete {
		return v, nil
	}
	// Nothing signed or chained beyond the end; nothing left unchained.
	err = q(func() error {
		var maxCP int64
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM audit_checkpoints`).Scan(&maxCP); err != nil {
			return err
		}
		if maxCP > last {
			bad(last+1, fmt.Sprintf("log truncated: checkpoint %d is signed but the chain ends at %d", maxCP, last))
			return nil
		}
		var entryID uuid.UUID
		err := s.pool.QueryRow(ctx, `SELECT a.entry_id FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id
			WHERE c.audit_id IS NULL AND a.at < $1 ORDER BY a.id LIMIT 1`, s.now().Add(-o.Grace)).Scan(&entryID)
		if err == nil {
			bad(last+1, "entry "+entryID.String()+" was never chained")
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
	if err != nil || !v.OK {
		return v, err
	}
	// Each grant's uses against its allowed entries (grants issued since
	// the last check, with a margin; all of them when starting over).
	checkedAt := s.now().UTC()
	err = q(func() error {
		rows, err := s.pool.Query(ctx, `SELECT coalesce((SELECT c.seq FROM audit_log a JOIN audit_chain c ON c.audit_id = a.id
				WHERE a.grant_id = g.id ORDER BY c.seq LIMIT 1), 0), g.uses,
				(SELECT count(*) FROM audit_log a WHERE a.grant_id = g.id AND a.outcome = 'allowed')
			FROM grants g WHERE g.created_at >= $1`, grantsFrom)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq, uses, allowed int64
			if err := rows.Scan(&seq, &uses, &allowed); err != nil {
				return err
			}
			v.GrantsChecked++
			if uses != allowed {
				bad(seq, fmt.Sprintf("a grant was used %d times but the log shows %d allowed reads", uses, allowed))
			}
		}
		return rows.Err()
	})
	if err != nil || !v.OK {
		return v, err
	}
	edge, _ := json.Marshal(res.State.Edge)
	err = q(func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO audit_verified (id, size, root, edge, chain_hash, grants_at, updated_at)
			VALUES (1, $1, $2, $3, $4, $5, now()) ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, root = EXCLUDED.root,
			edge = EXCLUDED.edge, chain_hash = EXCLUDED.chain_hash, grants_at = EXCLUDED.grants_at, updated_at = now()`,
			res.State.Size, res.State.Root[:], edge, prev, checkedAt)
		return err
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
