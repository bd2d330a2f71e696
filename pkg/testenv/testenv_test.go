package testenv_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/strata-bureau/strata/pkg/postgres"
	"github.com/strata-bureau/strata/pkg/testenv"
)

var tmpl = testenv.Template{
	Name:    "testenv",
	Version: "v1",
	Migrate: func(ctx context.Context, url string) error {
		pool, err := postgres.Connect(ctx, url, postgres.Options{MaxConns: 2})
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = pool.Exec(ctx, `CREATE TABLE things (id int PRIMARY KEY, name text NOT NULL)`)
		return err
	},
}

// Two tests clone the same template; each sees only its own rows.
func TestPostgresDatabasesAreClonedAndIsolated(t *testing.T) {
	t.Parallel()
	for _, id := range []int{1, 2} {
		t.Run("clone", func(t *testing.T) {
			t.Parallel()
			pool := testenv.Pool(t, testenv.PostgresDB(t, tmpl))
			ctx := testenv.Context(t)
			if _, err := pool.Exec(ctx, `INSERT INTO things VALUES ($1, 'x')`, id); err != nil {
				t.Fatalf("migrated table missing: %v", err)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM things`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("database not isolated: %d rows", n)
			}
		})
	}
}

func TestMongoDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	_, db1 := testenv.MongoDB(t)
	_, db2 := testenv.MongoDB(t)
	if db1.Name() == db2.Name() {
		t.Fatal("same database name twice")
	}
	ctx := testenv.Context(t)
	if _, err := db1.Collection("c").InsertOne(ctx, bson.M{"_id": "a"}); err != nil {
		t.Fatal(err)
	}
	n, err := db2.Collection("c").CountDocuments(ctx, bson.M{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("second database sees %d documents of the first", n)
	}
}
