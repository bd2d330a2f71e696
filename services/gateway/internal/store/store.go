// Package store is the gateway's PostgreSQL store: partners, API keys (as
// keyed hashes), OAuth clients and the cpf.queried outbox.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-bureau/strata/pkg/outbox"
	"github.com/strata-bureau/strata/pkg/pgmigrate"
	"github.com/strata-bureau/strata/pkg/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound and ErrConflict are the store's domain errors.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// MigrationsVersion changes whenever the migrations do.
func MigrationsVersion() string { return postgres.MigrationsVersion(migrations, "migrations") }

// Migrate applies the migrations.
func Migrate(ctx context.Context, url string) error {
	return withConn(ctx, url, func(conn *pgx.Conn) error { return migrate(ctx, conn) })
}

func migrate(ctx context.Context, conn *pgx.Conn) error {
	return pgmigrate.Apply(ctx, conn, migrations, "migrations", "gateway_schema_version", 4242101)
}

// MigrateAndGrant applies the migrations as the owner at url, then gives
// appRole what the gateway does at run time and nothing more: use of the
// schema, SELECT, INSERT, UPDATE and DELETE on its tables, and its
// sequences; never the migrations' bookkeeping, DDL or ownership.
func MigrateAndGrant(ctx context.Context, url, appRole string) error {
	return withConn(ctx, url, func(conn *pgx.Conn) error {
		if err := migrate(ctx, conn); err != nil {
			return err
		}
		role := pgx.Identifier{appRole}.Sanitize()
		for _, q := range []string{
			"REVOKE ALL ON SCHEMA public FROM PUBLIC",
			"GRANT USAGE ON SCHEMA public TO " + role,
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
			"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + role,
			"REVOKE ALL ON gateway_schema_version FROM " + role,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("migrate: grant to %s: %w", appRole, err)
			}
		}
		return nil
	})
}

// withConn runs fn on one connection to the gateway database at url (the
// migrations' advisory lock ends with it).
func withConn(ctx context.Context, url string, fn func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return errors.New("migrate: cannot connect to the gateway database")
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return fn(conn)
}

// Store is the gateway store.
type Store struct{ pool *pgxpool.Pool }

// New returns a store.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Partner is a partner institution.
type Partner struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Key is a stored API key (never its secret).
type Key struct {
	ID         string
	PartnerID  string
	LineageID  string
	SecretHash []byte
	Scopes     []string
	RatePerSec float64
	Burst      int
	DailyQuota int64
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
	CreatedAt  time.Time
}

// CreatePartner adds a partner; ErrConflict if the id exists.
func (s *Store) CreatePartner(ctx context.Context, id, name string) (Partner, error) {
	var p Partner
	err := s.pool.QueryRow(ctx, `INSERT INTO partners (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id, name, created_at`, id, name).
		Scan(&p.ID, &p.Name, &p.CreatedAt)
	return p, noRow(err, ErrConflict)
}

// ListPartners lists partners by id.
func (s *Store) ListPartners(ctx context.Context) ([]Partner, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at FROM partners ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Partner])
}

const keyColumns = `id, partner_id, lineage_id, secret_hash, scopes, rate_per_sec, burst, daily_quota, expires_at, revoked_at, last_used_at, created_at`

// someRow is err, or ErrNotFound when the statement changed no row.
func someRow(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// noRow is as when err says a single-row read found no row, else err.
func noRow(err, as error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return as
	}
	return err
}

func scanKey(r pgx.Row) (Key, error) {
	var k Key
	err := r.Scan(&k.ID, &k.PartnerID, &k.LineageID, &k.SecretHash, &k.Scopes, &k.RatePerSec, &k.Burst, &k.DailyQuota,
		&k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt, &k.CreatedAt)
	return k, noRow(err, ErrNotFound)
}

// CreateKey stores a key; the partner must exist.
func (s *Store) CreateKey(ctx context.Context, k Key) error {
	if k.LineageID == "" {
		k.LineageID = uuid.NewString()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, partner_id, lineage_id, secret_hash, scopes, rate_per_sec, burst, daily_quota, expires_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM partners WHERE id = $2)`,
		k.ID, k.PartnerID, k.LineageID, k.SecretHash, k.Scopes, k.RatePerSec, k.Burst, k.DailyQuota, k.ExpiresAt)
	return err
}

// GetKey returns a key by id.
func (s *Store) GetKey(ctx context.Context, id string) (Key, error) {
	return scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id))
}

// ListKeys lists a partner's keys.
func (s *Store) ListKeys(ctx context.Context, partnerID string) ([]Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE partner_id = $1 ORDER BY created_at`, partnerID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Key, error) { return scanKey(r) })
}

// SetKeyExpiry shortens a key's life (the old key of a rotation).
func (s *Store) SetKeyExpiry(ctx context.Context, partnerID, id string, at time.Time) error {
	return someRow(s.pool.Exec(ctx, `UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, $3), $3) WHERE id = $1 AND partner_id = $2 AND revoked_at IS NULL`, id, partnerID, at))
}

// RevokeKey revokes a key at once.
func (s *Store) RevokeKey(ctx context.Context, partnerID, id string) error {
	return someRow(s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND partner_id = $2`, id, partnerID))
}

// TouchKeys sets last_used_at for keys used since the last flush.
func (s *Store) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	for id, at := range used {
		if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = GREATEST(coalesce(last_used_at, $2), $2) WHERE id = $1`, id, at); err != nil {
			return err
		}
	}
	return nil
}

// OAuthClient is a client of the built-in issuer.
type OAuthClient struct {
	ID         string
	SecretHash []byte
	Scopes     []string
}

// UpsertOAuthClient creates or replaces a client.
func (s *Store) UpsertOAuthClient(ctx context.Context, c OAuthClient) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO oauth_clients (id, secret_hash, scopes) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, scopes = EXCLUDED.scopes`, c.ID, c.SecretHash, c.Scopes)
	return err
}

// GetOAuthClient returns a client.
func (s *Store) GetOAuthClient(ctx context.Context, id string) (OAuthClient, error) {
	var c OAuthClient
	err := s.pool.QueryRow(ctx, `SELECT id, secret_hash, scopes FROM oauth_clients WHERE id = $1`, id).Scan(&c.ID, &c.SecretHash, &c.Scopes)
	return c, noRow(err, ErrNotFound)
}

// OAuthBinding binds an OAuth2 client id to a partner.
type OAuthBinding struct {
	ClientID  string    `json:"client_id"`
	PartnerID string    `json:"partner_id"`
	CreatedAt time.Time `json:"created_at"`
}

// BindOAuthClient binds a client id to a partner. Binding it again to the
// same partner changes nothing; ErrConflict if another partner holds it,
// ErrNotFound if the partner does not exist.
func (s *Store) BindOAuthClient(ctx context.Context, partnerID, clientID string) (OAuthBinding, error) {
	b := OAuthBinding{ClientID: clientID}
	err := s.pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO oauth_client_bindings (client_id, partner_id)
			SELECT $1, id FROM partners WHERE id = $2
			ON CONFLICT (client_id) DO NOTHING
			RETURNING partner_id, created_at)
		SELECT partner_id, created_at FROM ins
		UNION ALL
		SELECT partner_id, created_at FROM oauth_client_bindings WHERE client_id = $1`, clientID, partnerID).Scan(&b.PartnerID, &b.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return b, ErrNotFound
	case err != nil:
		return b, err
	case b.PartnerID != partnerID:
		return OAuthBinding{}, ErrConflict
	}
	return b, nil
}

// OAuthClients lists the client ids bound to a partner, by id.
func (s *Store) OAuthClients(ctx context.Context, partnerID string) ([]OAuthBinding, error) {
	rows, err := s.pool.Query(ctx, `SELECT client_id, partner_id, created_at FROM oauth_client_bindings WHERE partner_id = $1 ORDER BY client_id`, partnerID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[OAuthBinding])
}

// UnbindOAuthClient removes a partner's binding; ErrNotFound if it has none.
func (s *Store) UnbindOAuthClient(ctx context.Context, partnerID, clientID string) error {
	return someRow(s.pool.Exec(ctx, `DELETE FROM oauth_client_bindings WHERE client_id = $1 AND partner_id = $2`, clientID, partnerID))
}

// Enqueue stores events in the outbox (relayed with pkg/outbox).
func (s *Store) Enqueue(ctx context.Context, msgs []outbox.Message) error {
	rows := make([][]any, len(msgs))
	for i, m := range msgs {
		id, err := uuid.Parse(m.MessageID)
		if err != nil {
			return err
		}
		var tp any // NULL without a trace
		if m.Traceparent != "" {
			tp = m.Traceparent
		}
		rows[i] = []any{id, m.Type, m.Body, tp}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"message_id", "type", "body", "traceparent"}, pgx.CopyFromRows(rows))
	return err
}

// Relay publishes up to 500 queued events in order.
func (s *Store) Relay(ctx context.Context, publish func(context.Context, []outbox.Message) []error) (int, error) {
	return outbox.RelayBatch(ctx, func(ctx context.Context, fn func(pgx.Tx) error) error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn)
	}, 500, publish)
}

// AddUsage adds this replica's request counts for day to the shared daily
// usage, and returns the totals (every replica's) for the lineages asked
// about. Days more than 40 days old are dropped on the way.
func (s *Store) AddUsage(ctx context.Context, day time.Time, deltas map[string]int64, lineages []string) (map[string]int64, error) {
	ids := make([]string, 0, len(deltas))
	ns := make([]int64, 0, len(deltas))
	for id, n := range deltas {
		ids, ns = append(ids, id), append(ns, n)
	}
	totals := make(map[string]int64, len(lineages))
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if len(ids) > 0 {
			// Sorted, so two replicas' upserts lock rows in the same order.
			if _, err := tx.Exec(ctx, `INSERT INTO key_usage (lineage_id, day, used)
				SELECT id, $2::date, n FROM unnest($1::text[], $3::bigint[]) AS u(id, n) ORDER BY id
				ON CONFLICT (lineage_id, day) DO UPDATE SET used = key_usage.used + EXCLUDED.used`, ids, day, ns); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM key_usage WHERE day < $1::date`, day.AddDate(0, 0, -40)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT lineage_id, used FROM key_usage WHERE day = $1::date AND lineage_id = ANY($2)`, day, lineages)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			totals[id] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return totals, nil
}
