package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-bureau/strata/pkg/postgres"
)

// Only a database that cannot be used right now is "unavailable" (503,
// retry later); an error nobody expected — a missing column, a syntax
// error — is not, so stores answer it as an internal error.
func TestIsUnavailableOnlyForRetryLaterFailures(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		"08006": true, "08001": true, "53300": true, "57P01": true, "57P03": true, "57014": true, "40001": true, "40P01": true,
		"42703": false, "42P01": false, "22021": false, "23505": false, "XX000": false,
	} {
		err := fmt.Errorf("query: %w", &pgconn.PgError{Code: code})
		if got := postgres.IsUnavailable(err); got != want {
			t.Errorf("SQLSTATE %s: IsUnavailable = %v, want %v", code, got, want)
		}
	}
	if postgres.IsUnavailable(nil) || postgres.IsUnavailable(errors.New("cannot scan into *int")) {
		t.Error("a plain error counted as unavailable")
	}
	if !postgres.IsUnavailable(context.DeadlineExceeded) {
		t.Error("a deadline is unavailable")
	}
	// A real connection that cannot be made.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(ctx, "postgres://x:y@"+addr+"/db?sslmode=disable")
	if err == nil || !postgres.IsUnavailable(err) {
		t.Errorf("connection refused: IsUnavailable(%v) = false", err)
	}
}

func TestMigrationsVersionFollowsTheFiles(t *testing.T) {
	t.Parallel()
	a := fstest.MapFS{"m/001.sql": {Data: []byte("CREATE TABLE a ();")}, "m/002.sql": {Data: []byte("CREATE TABLE b ();")}}
	v := postgres.MigrationsVersion(a, "m")
	if len(v) != 12 || v != postgres.MigrationsVersion(a, "m") {
		t.Fatalf("version %q is not a stable 12-character hash", v)
	}
	a["m/002.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c ();")}
	if postgres.MigrationsVersion(a, "m") == v {
		t.Fatal("a changed migration kept the version")
	}
}
