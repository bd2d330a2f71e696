package store

import (
	"context"
	"errors"

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
	var h WitnessedHead
	err := s.pool.QueryRow(ctx, `SELECT size, root, note FROM audit_witness_heads ORDER BY size DESC LIMIT 1`).Scan(&h.Size, &h.Root, &h.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, ErrNotFound
	}
	return h, err
}

// WitnessedHeadAt returns the head of that size (ErrNotFound: none).
func (s *Store) WitnessedHeadAt(ctx context.Context, size int64) (WitnessedHead, error) {
	var h WitnessedHead
	err := s.pool.QueryRow(ctx, `SELECT size, root, note FROM audit_witness_heads WHERE size = $1`, size).Scan(&h.Size, &h.Root, &h.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, ErrNotFound
	}
	return h, err
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
