package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// RelayBatch hands the publisher whole batches and deletes exactly the
// rows the broker confirmed: a refused message stays for the next relay.
func TestRelayBatchDeletesOnlyConfirmedRows(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t)
	url := testenv.PostgresDB(t, testenv.Template{Name: "outbox_test", Version: "2", Migrate: func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(ctx) }()
		_, err = conn.Exec(ctx, `CREATE TABLE outbox (id bigserial PRIMARY KEY, message_id uuid UNIQUE NOT NULL, type text NOT NULL,
			body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), published_at timestamptz, traceparent text)`)
		return err
	}})
	pool := testenv.Pool(t, url)
	for i := range 10 {
		// Even rows keep the trace of the request that wrote them.
		var tp any
		if i%2 == 0 {
			tp = fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e47%02d-00f067aa0ba902b7-01", i)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO outbox (message_id, type, body, traceparent) VALUES ($1, 't', $2, $3)`, uuid.New(), []byte(fmt.Sprint(i)), tp); err != nil {
			t.Fatal(err)
		}
	}
	run := func(ctx context.Context, fn func(pgx.Tx) error) error {
		return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, fn)
	}
	var sizes []int
	refuse := "3"
	publish := func(_ context.Context, ms []outbox.Message) []error {
		sizes = append(sizes, len(ms))
		errs := make([]error, len(ms))
		for i, m := range ms {
			var n int
			_, _ = fmt.Sscan(string(m.Body), &n)
			want := ""
			if n%2 == 0 {
				want = fmt.Sprintf("00-4bf92f3577b34da6a3ce929d0e0e47%02d-00f067aa0ba902b7-01", n)
			}
			if m.Traceparent != want {
				t.Errorf("row %d relayed with traceparent %q, want %q", n, m.Traceparent, want)
			}
			if string(m.Body) == refuse {
				errs[i] = errors.New("nacked")
			}
		}
		return errs
	}
	sent, err := outbox.RelayBatch(ctx, run, 8, publish)
	if sent != 7 || err == nil {
		t.Fatalf("first relay: sent %d, err %v; want 7 and the nack", sent, err)
	}
	refuse = ""
	sent, err = outbox.RelayBatch(ctx, run, 8, publish)
	if sent != 3 || err != nil {
		t.Fatalf("second relay: sent %d, err %v", sent, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows left (%v)", left, err)
	}
	if len(sizes) != 2 || sizes[0] != 8 || sizes[1] != 3 {
		t.Fatalf("batches %v, want [8 3]", sizes)
	}
}
