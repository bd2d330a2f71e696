package store

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/strata-bureau/strata/pkg/checkpoint"
	"github.com/strata-bureau/strata/services/base-a/internal/audit"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
)

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
	hv, err := checkpoint.NewVerifier(o.Keys.VerifierKey())
	if err != nil {
		return domain.Verification{}, err
	}
	r := &verification{s: s, o: o, pub: o.Keys.PublicKey(), hv: hv, v: domain.Verification{OK: true}, start: 1, prev: make([]byte, 32)}
	// Where to start: a retention purge's anchor, or the last verified state.
	if err := r.fromPurge(ctx); err != nil || !r.v.OK {
		return r.v, err
	}
	if fromSeq == 0 {
		if err := r.fromVerified(ctx); err != nil {
			return r.v, err
		}
	}
	lv, err := audit.NewLogVerifier(hv, r.tree)
	if err != nil {
		r.bad(r.start, err.Error())
		return r.v, nil
	}
	if err := r.walk(ctx, lv); err != nil {
		return r.v, err
	}
	res := lv.Finish()
	if !res.OK && (r.v.OK || res.FirstBadEntry < r.v.FirstBadEntry) {
		r.v.OK, r.v.FirstBadEntry, r.v.Problem = false, res.FirstBadEntry, res.Problem
	}
	r.v.TreeSize = r.last
	r.v.Incomplete = r.v.OK && r.v.CheckedEntries >= o.Budget
	if !r.v.OK || r.v.Incomplete {
		return r.v, nil
	}
	if err := r.checkEnd(ctx); err != nil || !r.v.OK {
		return r.v, err
	}
	checkedAt := s.now().UTC()
	if err := r.checkGrants(ctx); err != nil || !r.v.OK {
		return r.v, err
	}
	return r.v, r.save(ctx, res.State, checkedAt)
}

// verification is one run of Verify: where it started, what it has
// checked, and the first problem found.
type verification struct {
	s   *Store
	o   ChainOptions
	pub ed25519.PublicKey
	hv  note.Verifier
	v   domain.Verification
	// start is the first entry to check, prev the chain hash before it,
	// tree the Merkle state before it, last the last entry checked.
	start, last int64
	prev        []byte
	tree        audit.State
	// grantsFrom: grants created since then are checked.
	grantsFrom time.Time
}

func (r *verification) bad(seq int64, problem string) {
	if r.v.OK {
		r.v.OK, r.v.FirstBadEntry, r.v.Problem = false, seq, problem
	}
}

func (r *verification) q(fn func() error) error { return r.s.breaker.Run(fn) }

// fromPurge starts after the newest retention purge, checking its signed
// record, the checkpoint and tree head it is anchored on.
func (r *verification) fromPurge(ctx context.Context) error {
	var through, entries int64
	var cutoff, purgedAt time.Time
	var purgeSig []byte
	err := r.q(func() error {
		return r.s.pool.QueryRow(ctx, `SELECT through_seq, cutoff, purged_at, entries, signature FROM audit_purges
			ORDER BY through_seq DESC LIMIT 1`).Scan(&through, &cutoff, &purgedAt, &entries, &purgeSig)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	var cpHash, headNote, cpSig []byte
	var cpAt time.Time
	err = r.q(func() error {
		return r.s.pool.QueryRow(ctx, `SELECT c.hash, c.signed_at, c.signature, h.note FROM audit_checkpoints c
			LEFT JOIN audit_heads h ON h.size = c.seq WHERE c.seq = $1`, through).Scan(&cpHash, &cpAt, &cpSig, &headNote)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		r.bad(through, fmt.Sprintf("the checkpoint purge %d is anchored on is missing", through))
		return nil
	}
	if err != nil {
		return err
	}
	if !audit.VerifyCheckpoint(r.pub, through, cpHash, cpAt, cpSig) ||
		!audit.VerifyPurge(r.pub, through, cpHash, cutoff, purgedAt, entries, purgeSig) {
		r.bad(through, "purge record signature invalid")
		return nil
	}
	h, err := audit.OpenHead(headNote, r.hv)
	if err != nil || h.Size != through {
		r.bad(through, "the signed tree head the purge is anchored on is missing or invalid")
		return nil
	}
	edge := map[int64]tlog.Hash{}
	idx := audit.EdgeIndexes(through)
	var hs []tlog.Hash
	if err := r.q(func() error { hs, err = (treeReader{ctx, r.s.pool}).ReadHashes(idx); return err }); err != nil {
		r.bad(through, "the tree hashes at the purge anchor are missing")
		return nil
	}
	for i, x := range idx {
		edge[x] = hs[i]
	}
	r.start, r.prev, r.v.PurgedThrough = through+1, cpHash, through
	r.tree = audit.State{Size: through, Root: h.Root, Edge: edge}
	return nil
}

// fromVerified continues from the last verified state, when it is past
// the purge anchor.
func (r *verification) fromVerified(ctx context.Context) error {
	var size int64
	var root, edgeJSON, chainHash []byte
	var grantsAt time.Time
	err := r.q(func() error {
		return r.s.pool.QueryRow(ctx, `SELECT size, root, edge, chain_hash, grants_at FROM audit_verified WHERE id = 1`).
			Scan(&size, &root, &edgeJSON, &chainHash, &grantsAt)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	case size >= r.start-1:
		st := audit.State{Size: size}
		copy(st.Root[:], root)
		if err := json.Unmarshal(edgeJSON, &st.Edge); err == nil {
			r.start, r.prev, r.tree, r.grantsFrom = size+1, chainHash, st, grantsAt.Add(-10*time.Minute)
		}
	}
	return nil
}

// walk checks the log page by page from start, within the budget: each
// entry's leaf (lv), chain link and checkpoint.
func (r *verification) walk(ctx context.Context, lv *audit.LogVerifier) error {
	r.last = r.start - 1
	for r.v.OK && r.v.CheckedEntries < r.o.Budget {
		page, err := r.s.ExportLog(ctx, r.last, 10000)
		if err != nil {
			return err
		}
		for _, n := range page.Heads {
			_, _ = lv.AddHead(n, "the log") // a bad one fails lv, which names the entry
		}
		var links map[int64][3][]byte
		if len(page.Entries) > 0 {
			if links, err = r.links(ctx, page.Entries[0].Seq, page.Entries[len(page.Entries)-1].Seq); err != nil {
				return err
			}
		}
		for _, e := range page.Entries {
			if !lv.Add(e) || !r.checkLink(e, links[e.Seq]) {
				break
			}
			r.v.CheckedEntries++
			r.last = e.Seq
		}
		if !lv.OK() || !page.More {
			return nil
		}
	}
	return nil
}

// checkLink checks entry e's chain link and, where one is signed, its
// checkpoint; c is (link, checkpoint signature, signing time).
func (r *verification) checkLink(e audit.LogEntry, c [3][]byte) bool {
	r.prev = r.o.Keys.Link(r.prev, e.Seq, audit.Digest(e.Row))
	if !hmacEqual(r.prev, c[0]) {
		r.bad(e.Seq, "entry altered")
		return false
	}
	if c[1] != nil {
		var at time.Time
		_ = at.UnmarshalBinary(c[2])
		if !audit.VerifyCheckpoint(r.pub, e.Seq, r.prev, at, c[1]) {
			r.bad(e.Seq, "checkpoint does not match the chain")
			return false
		}
		r.v.CheckpointsVerified++
	}
	return true
}

// links reads the chain links and checkpoints of entries lo..hi.
func (r *verification) links(ctx context.Context, lo, hi int64) (map[int64][3][]byte, error) {
	cps := map[int64][3][]byte{}
	err := r.q(func() error {
		rows, err := r.s.pool.Query(ctx, `SELECT c.seq, c.hash, k.signature, k.signed_at FROM audit_chain c
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
	return cps, err
}

// checkEnd: nothing signed or chained beyond the end; nothing left
// unchained past the grace period.
func (r *verification) checkEnd(ctx context.Context) error {
	return r.q(func() error {
		// The log keeps growing while it is verified (every read, the
		// verifier's own included, is an entry): a checkpoint past the
		// walk's end is truncation only if the chain, read in the same
		// snapshot, does not reach it. Entries chained since the walk are
		// checked by the next run (a checkpoint over a chain rewritten
		// after a cut fails there, at its own entry).
		var maxCP, maxChain int64
		if err := r.s.pool.QueryRow(ctx, `SELECT (SELECT coalesce(max(seq), 0) FROM audit_checkpoints),
			(SELECT coalesce(max(seq), 0) FROM audit_chain)`).Scan(&maxCP, &maxChain); err != nil {
			return err
		}
		if maxCP > r.last && maxCP > maxChain {
			r.bad(min(r.last, maxChain)+1, fmt.Sprintf("log truncated: checkpoint %d is signed but the chain ends at %d", maxCP, min(r.last, maxChain)))
			return nil
		}
		var entryID uuid.UUID
		err := r.s.pool.QueryRow(ctx, `SELECT a.entry_id FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id
			WHERE c.audit_id IS NULL AND a.at < $1 ORDER BY a.id LIMIT 1`, r.s.now().Add(-r.o.Grace)).Scan(&entryID)
		if err == nil {
			r.bad(r.last+1, "entry "+entryID.String()+" was never chained")
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return nil
	})
}

// checkGrants checks each grant's uses against its allowed entries (grants
// issued since the last check, with a margin; all of them when starting
// over).
func (r *verification) checkGrants(ctx context.Context) error {
	return r.q(func() error {
		rows, err := r.s.pool.Query(ctx, `SELECT coalesce((SELECT c.seq FROM audit_log a JOIN audit_chain c ON c.audit_id = a.id
				WHERE a.grant_id = g.id ORDER BY c.seq LIMIT 1), 0), g.uses,
				(SELECT count(*) FROM audit_log a WHERE a.grant_id = g.id AND a.outcome = 'allowed')
			FROM grants g WHERE g.created_at >= $1`, r.grantsFrom)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var seq, uses, allowed int64
			if err := rows.Scan(&seq, &uses, &allowed); err != nil {
				return err
			}
			r.v.GrantsChecked++
			if uses != allowed {
				r.bad(seq, fmt.Sprintf("a grant was used %d times but the log shows %d allowed reads", uses, allowed))
			}
		}
		return rows.Err()
	})
}

// save records the verified state, so the next run continues from it.
func (r *verification) save(ctx context.Context, st audit.State, checkedAt time.Time) error {
	edge, _ := json.Marshal(st.Edge)
	return r.q(func() error {
		_, err := r.s.pool.Exec(ctx, `INSERT INTO audit_verified (id, size, root, edge, chain_hash, grants_at, updated_at)
			VALUES (1, $1, $2, $3, $4, $5, now()) ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, root = EXCLUDED.root,
			edge = EXCLUDED.edge, chain_hash = EXCLUDED.chain_hash, grants_at = EXCLUDED.grants_at, updated_at = now()`,
			st.Size, st.Root[:], edge, r.prev, checkedAt)
		return err
	})
}
