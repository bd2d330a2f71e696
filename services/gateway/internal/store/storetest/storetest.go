// Package storetest gives the gateway's tests a migrated database of their
// own (cloned from a template, pkg/testenv) and a store on it.
package storetest

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/services/gateway/internal/store"
)

// Template is the gateway's migrated template database.
var Template = testenv.Template{Name: "gateway", Version: store.MigrationsVersion(), Migrate: store.Migrate}

// New returns a store on a fresh database and its pool (closed when the
// test ends). Without the test stores it skips, or fails under
// STRATA_REQUIRE_INTEGRATION.
func New(t testing.TB) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.Pool(t, testenv.PostgresDB(t, Template))
	return store.New(pool), pool
}
