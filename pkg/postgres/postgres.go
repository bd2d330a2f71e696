// Package postgres opens pgx/v5 connection pools the way Strata's services
// use them: bounded pool, statement timeouts, and a start-up wait so a
// service started beside its database does not fail on the first try.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options for Connect.
type Options struct {
	// MaxConns caps the pool (default 8).
	MaxConns int32
	// StatementTimeout is set per session (default 5s).
	StatementTimeout time.Duration
	// WaitFor keeps retrying the first connection this long (default 0: one try).
	WaitFor time.Duration
	// AfterConnect runs on every new connection.
	AfterConnect func(context.Context, *pgxpool.Conn) error
}

// Connect opens a pool for url and checks it with a ping.
func Connect(ctx context.Context, url string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may hold a password: never echo it.
		return nil, errors.New("postgres: invalid database URL")
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = 5 * time.Second
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(opts.StatementTimeout.Milliseconds())
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", Redact(err))
	}
	deadline := time.Now().Add(opts.WaitFor)
	for {
		err = pool.Ping(ctx)
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: ping: %w", Redact(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Redact keeps a driver error's class (so callers can still use errors.As on
// *pgconn.PgError) but drops connection details such as the host and user.
func Redact(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errors.New("cannot connect to database")
	}
	return err
}

// IsInputError reports whether PostgreSQL refused a statement because of
// the values it was given — class 22 (data exception: an invalid byte
// sequence such as a NUL, 22021; a value too long, 22001; a bad number or
// date) or class 23 (integrity constraint violation) — rather than because
// the database is in trouble. Stores map it to their "invalid input"
// sentinel: the caller's error, never "unavailable", never a breaker failure.
func IsInputError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}
