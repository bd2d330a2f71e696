// Package outbox relays events that a service stored in its PostgreSQL
// "outbox" table (same transaction as the write they describe) to the
// broker. The table is
//
//	outbox(id bigserial, message_id uuid unique, type text, body bytea,
//	       created_at timestamptz, published_at timestamptz,
//	       traceparent text)
//
// traceparent (nullable) is the W3C trace context of the request that
// wrote the row, so the event published later, maybe after a broker
// outage, still belongs to that request's trace.
//
// Rows are locked with SKIP LOCKED, so several replicas can relay at once
// without publishing a row twice; a crash between publish and delete can,
// and consumers dedupe on message_id. A row is deleted once the broker has
// confirmed it: events may carry personal data (a CPF), which must not
// outlive their delivery. published_at stays in the schema for old rows.
package outbox

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Message is an event waiting to be published.
type Message struct {
	ID        int64
	MessageID string
	Type      string
	Body      []byte
	// Traceparent is the W3C traceparent of the request that wrote the
	// event ("" when none).
	Traceparent string
}

// TxRunner runs fn in a transaction (a pool's BeginTxFunc, or one wrapped
// in a circuit breaker).
type TxRunner func(ctx context.Context, fn func(pgx.Tx) error) error

// Relay publishes up to limit unpublished events in order and deletes the
// ones the broker confirmed. A publish failure stops the batch; it is
// returned after the commit of what was confirmed, so it never counts as a
// database failure.
func Relay(ctx context.Context, run TxRunner, limit int, publish func(context.Context, Message) error) (int, error) {
	return relay(ctx, run, limit, func(ctx context.Context, batch []Message) ([]int64, error) {
		var done []int64
		for _, m := range batch {
			if err := publish(ctx, m); err != nil {
				return done, err
			}
			done = append(done, m.ID)
		}
		return done, nil
	})
}

// RelayBatch is Relay for a publisher that confirms many messages at once
// (amqp.Publisher.PublishBatch): it publishes up to limit unpublished
// events as one pipelined batch and deletes, in one statement, every row
// the broker confirmed. It returns how many were sent and the first
// publish error, which never counts as a database failure.
func RelayBatch(ctx context.Context, run TxRunner, limit int, publish func(context.Context, []Message) []error) (int, error) {
	return relay(ctx, run, limit, func(ctx context.Context, batch []Message) ([]int64, error) {
		done := make([]int64, 0, len(batch))
		var first error
		for i, err := range publish(ctx, batch) {
			if err != nil {
				if first == nil {
					first = err
				}
				continue
			}
			done = append(done, batch[i].ID)
		}
		return done, first
	})
}

// relay locks up to limit unpublished rows, hands them to send, and
// deletes the rows send reports as confirmed in the same transaction. The
// publish error send returns is reported after the commit, so it never
// counts as a database failure.
func relay(ctx context.Context, run TxRunner, limit int, send func(context.Context, []Message) ([]int64, error)) (int, error) {
	sent := 0
	var pubErr error
	err := run(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, message_id, type, body, coalesce(traceparent, '') FROM outbox
			WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		var batch []Message
		for rows.Next() {
			var m Message
			var mid uuid.UUID
			if err := rows.Scan(&m.ID, &mid, &m.Type, &m.Body, &m.Traceparent); err != nil {
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
		if len(batch) == 0 {
			return nil
		}
		var done []int64
		done, pubErr = send(ctx, batch)
		sent = len(done)
		if len(done) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1)`, done)
		return err
	})
	if err == nil {
		err = pubErr
	}
	return sent, err
}
