package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// WitnessedHead is a signed tree head of Base A's audit log kept here.
type WitnessedHead struct {
	Size int64
	Root []byte
	Note []byte
}

// LastWitnessedHead returns the largest head kept (ErrNotFound: none).
func (s *Store) LastWitnessedHead(ctx context.Context) (WitnessedHead, error) {
	return scanHead(s.pool.QueryRow(ctx, `SELECT size, root, note FROM audit_witness_heads ORDER BY size DESC LIMIT 1`))
}

// WitnessedHeadAt returns the head of that size (ErrNotFound: none).
func (s *Store) WitnessedHeadAt(ctx context.Context, size int64) (WitnessedHead, error) {
	return scanHead(s.pool.QueryRow(ctx, `SELECT size, root, note FROM audit_witness_heads WHERE size = $1`, size))
}

func scanHead(r pgx.Row) (WitnessedHead, error) {
	var h WitnessedHead
	err := r.Scan(&h.Size, &h.Root, &h.Note)
	return h, noRow(err, ErrNotFound)
}

// KeepWitnessedHead stores a head proven consistent (idempotent).
func (s *Store) KeepWitnessedHead(ctx context.Context, h WitnessedHead) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_witness_heads (size, root, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING`,
		h.Size, h.Root, h.Note)
	return err
}

// WitnessAlarm records a head that failed the witness's checks.
func (s *Store) WitnessAlarm(ctx context.Context, size int64, problem string, note []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_witness_alarms (size, problem, note) VALUES ($1, $2, $3)`, size, problem, note)
	return err
}

// WitnessAlarms counts the alarms raised.
func (s *Store) WitnessAlarms(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_witness_alarms`).Scan(&n)
	return n, err
}

// ThinWitnessedHeads deletes the heads received before cutoff except the
// largest of each UTC day, and returns how many it deleted. The newest
// head (the one every new head is checked against) is the largest of its
// day, so it is always kept.
func (s *Store) ThinWitnessedHeads(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
DELETE FROM audit_witness_heads WHERE size IN (
  SELECT size FROM (
    SELECT size, row_number() OVER (PARTITION BY date_trunc('day', received_at AT TIME ZONE 'UTC') ORDER BY size DESC) AS rank
    FROM audit_witness_heads WHERE received_at < $1
  ) old WHERE rank > 1)`, cutoff)
	return tag.RowsAffected(), err
}
