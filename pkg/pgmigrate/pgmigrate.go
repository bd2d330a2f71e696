// Package pgmigrate applies a service's embedded tern migrations. It is
// apart from pkg/postgres so that what only opens pools does not depend on
// tern.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

// Apply applies the tern migrations in dir of fsys (a service's embedded
// migrations) over conn, recording the applied version in versionTable.
// One migrator at a time: it first takes the session advisory lock lockID,
// so replicas started together do not race (the lock ends with conn).
func Apply(ctx context.Context, conn *pgx.Conn, fsys fs.FS, dir, versionTable string, lockID int64) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
