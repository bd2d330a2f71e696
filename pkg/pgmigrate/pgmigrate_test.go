package pgmigrate_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/pkg/pgmigrate"
	"github.com/strata-bureau/strata/pkg/testenv"
)

// Apply applies what is new and only that: a second run changes nothing,
// a later migration is applied on top, and the version table follows.
func TestApplyAppliesEachMigrationOnce(t *testing.T) {
	t.Parallel()
	empty := testenv.Template{Name: "pgmigrate", Version: "v1", Migrate: func(context.Context, string) error { return nil }}
	ctx := testenv.Context(t)
	conn, err := pgx.Connect(ctx, testenv.PostgresDB(t, empty))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(ctx)) })
	fsys := fstest.MapFS{
		"m/001_things.sql": {Data: []byte("CREATE TABLE things (id int PRIMARY KEY);")},
		"m/002_seed.sql":   {Data: []byte("INSERT INTO things VALUES (1);")},
	}
	version := func() (v int32) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT version FROM test_schema_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for range 2 {
		if err := pgmigrate.Apply(ctx, conn, fsys, "m", "test_schema_version", 4242999); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM things`).Scan(&n); err != nil || n != 1 || version() != 2 {
		t.Fatalf("after two runs: %d rows (%v), version %d; want 1 row, version 2", n, err, version())
	}
	fsys["m/003_more.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO things VALUES (2);")}
	if err := pgmigrate.Apply(ctx, conn, fsys, "m", "test_schema_version", 4242999); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM things`).Scan(&n); err != nil || n != 2 || version() != 3 {
		t.Fatalf("after a new migration: %d rows (%v), version %d; want 2 rows, version 3", n, err, version())
	}
}
