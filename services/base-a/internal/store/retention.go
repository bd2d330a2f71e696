package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// MinAuditRetention is the shortest retention the database accepts: the
// data-subject request covers six months, so no entry younger than this
// can be purged (audit_purge enforces it too, whatever the caller).
const MinAuditRetention = 183 * 24 * time.Hour

// PurgeAudit removes the audit entries older than retention, up to the
// newest signed checkpoint that covers only such entries, and records the
// purge with a signature so Verify can tell it from tampering. The chain
// head and everything after that checkpoint stay. It returns the number of
// entries removed (0 when nothing is due or another replica holds the
// chain lock).
func (s *Store) PurgeAudit(ctx context.Context, o ChainOptions, retention time.Duration) (int64, error) {
	if retention < MinAuditRetention {
		return 0, errors.New("audit retention is shorter than 183 days")
	}
	var purged int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(4242002)`).Scan(&got); err != nil || !got {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		cutoff := now.Add(-retention)
		var prev, head int64
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT max(through_seq) FROM audit_purges), 0),
			coalesce((SELECT max(seq) FROM audit_chain), 0)`).Scan(&prev, &head); err != nil {
			return err
		}
		// The first entry at or after the cutoff bounds the purge; entries
		// are chained in commit order, so a few just before it may still be
		// newer than the cutoff (slow transactions, clock skew): the
		// checkpoint must precede those too.
		bound := head // never the head itself
		var first int64
		err := tx.QueryRow(ctx, `SELECT c.seq FROM audit_log a JOIN audit_chain c ON c.audit_id = a.id
			WHERE a.at >= $1 ORDER BY a.at LIMIT 1`, cutoff).Scan(&first)
		if err == nil {
			bound = min(bound, first)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var early *int64
		if err := tx.QueryRow(ctx, `SELECT min(c.seq) FROM audit_chain c JOIN audit_log a ON a.id = c.audit_id
			WHERE c.seq > $1 AND c.seq < $2 AND a.at >= $3`, prev, bound, cutoff).Scan(&early); err != nil {
			return err
		}
		if early != nil {
			bound = *early
		}
		var through int64
		var anchor []byte
		// The anchor is a checkpoint with its signed tree head: the
		// verifiable log restarts from that head after the purge.
		err = tx.QueryRow(ctx, `SELECT c.seq, c.hash FROM audit_checkpoints c JOIN audit_heads h ON h.size = c.seq
			WHERE c.seq > $1 AND c.seq < $2 ORDER BY c.seq DESC LIMIT 1`, prev, bound).Scan(&through, &anchor)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // nothing due
		}
		if err != nil {
			return err
		}
		entries := through - prev
		sig := o.Keys.SignPurge(through, anchor, cutoff, now, entries)
		return tx.QueryRow(ctx, `SELECT audit_purge($1, $2, $3, $4)`, through, cutoff, now, sig).Scan(&purged)
	})
	return purged, err
}
