package store

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// OutboxMessage is an event waiting to be published.
type OutboxMessage struct {
	ID        int64
	MessageID string
	Type      string
	Body      []byte
}

// RelayOutbox publishes up to 100 unpublished events in order and marks the
// ones the broker confirmed. Rows are locked with SKIP LOCKED, so several
// replicas can relay at once without publishing a row twice (a crash
// between publish and mark may; consumers dedupe on message_id).
func (s *Store) RelayOutbox(ctx context.Context, publish func(context.Context, OutboxMessage) error) (int, error) {
	sent := 0
	var pubErr error
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, message_id, type, body FROM outbox
			WHERE published_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			return err
		}
		var batch []OutboxMessage
		for rows.Next() {
			var m OutboxMessage
			var mid uuid.UUID
			if err := rows.Scan(&m.ID, &mid, &m.Type, &m.Body); err != nil {
				rows.Close()
				return err
			}
			m.MessageID = mid.String()
			batch = append(batch, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var done []int64
		for _, m := range batch {
			if pubErr = publish(ctx, m); pubErr != nil {
				break
			}
			done = append(done, m.ID)
		}
		if len(done) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, done); err != nil {
				return err
			}
		}
		sent = len(done)
		// Commit what was confirmed. A broker failure is reported after the
		// commit, so it never counts against the database's breaker.
		return nil
	})
	if err == nil {
		err = pubErr
	}
	return sent, err
}
