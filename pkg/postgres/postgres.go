// Package postgres opens pgx/v5 connection pools the way Strata's services
// use them: bounded pool, statement timeouts, and a start-up wait so a
// service started beside its database does not fail on the first try.
package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"strings"
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

// IsUnavailable reports whether err says the database could not be used
// right now — the pool could not connect or lost the connection, a
// timeout or deadline passed, or PostgreSQL answered with a class that
// means "retry later": 08 (connection exception), 53 (insufficient
// resources), 57P0x (shutting down, cannot connect now), 57014 (statement
// timeout or cancel), 40001/40P01 (serialization failure, deadlock). A
// store answers "unavailable" (503) for these only; any other error is
// unexpected (a bug, a schema mismatch) and is answered as an internal
// error.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "53"), strings.HasPrefix(pgErr.Code, "57P"):
			return true
		}
		switch pgErr.Code {
		case "57014", "40001", "40P01":
			return true
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err)
}

// MigrationsVersion is a short hash of every file in dir of fsys (a
// service's embedded migrations): it changes whenever a migration does, so
// test template databases built from an older set are not reused.
func MigrationsVersion(fsys fs.FS, dir string) string {
	h := sha256.New()
	entries, _ := fs.ReadDir(fsys, dir)
	for _, e := range entries {
		b, _ := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))[:12]
}
