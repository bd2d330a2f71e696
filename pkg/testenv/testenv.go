// Package testenv gives integration tests real dependencies: PostgreSQL,
// RabbitMQ and a Mongo-wire server (FerretDB locally, MongoDB anywhere).
//
// The servers are named by environment variables:
//
//	STRATA_TEST_DATABASE_URL  a PostgreSQL URL whose user may create databases
//	STRATA_TEST_MONGODB_URI   a MongoDB URI
//	STRATA_TEST_AMQP_URL      an AMQP URL
//
// `make test` starts private instances once per run (deploy/local's
// strata-local test-env) and sets them. Without them a test that needs one
// is skipped with a message, unless STRATA_REQUIRE_INTEGRATION=1 (set by
// `make test` and CI), which turns the skip into a failure.
//
// Isolation: each Postgres test gets its own database cloned from a migrated
// template, each Mongo test a random database, each AMQP test unique names.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/pkg/postgres"
)

// Variable names.
const (
	EnvDatabaseURL        = "STRATA_TEST_DATABASE_URL"
	EnvMongoURI           = "STRATA_TEST_MONGODB_URI"
	EnvAMQPURL            = "STRATA_TEST_AMQP_URL"
	EnvRequireIntegration = "STRATA_REQUIRE_INTEGRATION"
)

// need returns the variable's value, or skips (or fails) the test.
func need(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("integration test needs %s: set %s (make test starts one for you)", what, name)
	if os.Getenv(EnvRequireIntegration) == "1" {
		t.Fatalf("%s; %s=1 forbids skipping", msg, EnvRequireIntegration)
	}
	t.Skip(msg)
	return ""
}

// Context returns a context that ends with the test (or after 2 minutes).
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// RandomSuffix returns 12 random hex characters.
func RandomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// UniqueName returns prefix plus the test's name and a random suffix,
// lower-case and safe as a queue or database name.
func UniqueName(t testing.TB, prefix string) string {
	name := strings.ToLower(t.Name())
	name = unsafeChars.ReplaceAllString(name, "_")
	if len(name) > 24 {
		name = name[:24]
	}
	return strings.Trim(prefix+"_"+name, "_") + "_" + RandomSuffix()
}

// AMQPURL returns the broker URL.
func AMQPURL(t testing.TB) string {
	t.Helper()
	return need(t, EnvAMQPURL, "RabbitMQ")
}

// MongoURI returns the Mongo-wire server URI.
func MongoURI(t testing.TB) string {
	t.Helper()
	return need(t, EnvMongoURI, "a Mongo-wire server")
}

// MongoDB returns a connected client and a fresh random database, dropped
// when the test ends.
func MongoDB(t testing.TB) (*mongo.Client, *mongo.Database) {
	t.Helper()
	uri := MongoURI(t)
	ctx := Context(t)
	client, err := mongodb.Connect(ctx, uri, mongodb.Options{AppName: "strata-test", WaitFor: 10 * time.Second})
	if err != nil {
		t.Fatalf("testenv: mongo: %v", err)
	}
	db := client.Database(UniqueName(t, "t"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
		_ = client.Disconnect(ctx)
	})
	return client, db
}

// PostgresAdminURL returns the URL of a user who may create databases.
func PostgresAdminURL(t testing.TB) string {
	t.Helper()
	return need(t, EnvDatabaseURL, "PostgreSQL")
}

// Template describes a migrated database that tests clone.
type Template struct {
	// Name is a short identifier, e.g. "basea".
	Name string
	// Version changes whenever the migrations change (a hash of them), so a
	// stale template is never reused.
	Version string
	// Migrate brings the empty database at url to the current schema.
	Migrate func(ctx context.Context, url string) error
}

// PostgresDB creates a database for this test by cloning tmpl's template
// (migrating the template first if no process has yet) and returns its URL.
// The database is dropped when the test ends.
func PostgresDB(t testing.TB, tmpl Template) string {
	t.Helper()
	admin := PostgresAdminURL(t)
	ctx := Context(t)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: postgres: %v", postgres.Redact(err))
	}
	defer func() { _ = conn.Close(context.Background()) }()

	tmplName := "tmpl_" + unsafeChars.ReplaceAllString(strings.ToLower(tmpl.Name+"_"+tmpl.Version), "_")
	if len(tmplName) > 60 {
		tmplName = tmplName[:60]
	}
	if err := ensureTemplate(ctx, conn, admin, tmplName, tmpl); err != nil {
		t.Fatalf("testenv: template %s: %v", tmplName, err)
	}
	name := UniqueName(t, "t")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tmplName}.Sanitize()); err != nil {
		t.Fatalf("testenv: clone template: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer func() { _ = c.Close(ctx) }()
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return withDatabase(admin, name)
}

func ensureTemplate(ctx context.Context, conn *pgx.Conn, admin, tmplName string, tmpl Template) error {
	// Several test binaries run at once: serialise template creation.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7242019)"); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock(7242019)") }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmplName).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := tmplName + "_b"
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return err
	}
	if tmpl.Migrate != nil {
		if err := tmpl.Migrate(ctx, withDatabase(admin, building)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	// Make sure no connection is left on it, then publish it under its name.
	_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", building)
	_, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{tmplName}.Sanitize())
	return err
}

// withDatabase replaces the database in a postgres URL.
func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

// Pool opens a pool on url, closed when the test ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Connect(Context(t), url, postgres.Options{MaxConns: 8})
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
