package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/deploy/local/internal/stack"
	"github.com/strata-bureau/strata/pkg/cpf"
)

// SeedConfig of `strata-local seed -cpfs N`.
type SeedConfig struct {
	// DataDir and BinDir as for Run (the platform must be running, or at
	// least its stores).
	DataDir, BinDir string
	// DatabaseURL and MongoURI replace the embedded stores' (as for Run).
	DatabaseURL, MongoURI string
	// CPFs is how many synthetic CPFs to add.
	CPFs int
	// DatabaseSuffix as for Run: the platform's databases to seed.
	DatabaseSuffix string
}

// SyntheticCPF is the i-th synthetic CPF, with valid check digits; the
// same as services/base-a/app.SyntheticCPF, so the three bases describe
// the same people.
func SyntheticCPF(i int) string {
	return cpf.Complete(fmt.Sprintf("%09d", 100_000_000+i)).String()
}

// Seed adds synthetic CPFs 0..N-1 to every base: people in Base A (by
// basea-seed, which encrypts them with Base A's keys), profiles with a
// debt summary in Base B, and activity with a last purchase and recent
// movements in Base C. Writes are bulk (1,000 documents or rows per
// statement) and idempotent: what exists is left alone, so seeding again,
// or to a larger N, adds only what is missing. Progress goes to out.
func Seed(ctx context.Context, cfg SeedConfig, out io.Writer) error {
	if cfg.CPFs <= 0 || cfg.CPFs > 100_000_000 {
		return errors.New("-cpfs must be between 1 and 100,000,000")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = ".data"
	}
	if cfg.BinDir == "" {
		cfg.BinDir = filepath.Join(cfg.DataDir, "bin")
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return err
	}
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return err
	}
	stores := &Stores{DatabaseURL: cfg.DatabaseURL, MongoURI: cfg.MongoURI}
	if stores.DatabaseURL == "" {
		pw, err := stack.ReadOrCreateSecret(filepath.Join(cfg.DataDir, "postgres", "superuser.password"))
		if err != nil {
			return err
		}
		stores.DatabaseURL = fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", pw, postgresPort)
	}
	if stores.MongoURI == "" {
		stores.MongoURI = "mongodb://" + ferretAddr + "/"
	}
	start := time.Now()
	if err := seedBaseA(ctx, cfg, stores, out); err != nil {
		return err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(stores.MongoURI).SetTimeout(time.Minute))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	now := time.Now().UTC().Truncate(time.Millisecond)
	profiles := client.Database("strata_baseb" + cfg.DatabaseSuffix).Collection("profiles")
	if err := seedMongo(ctx, out, "base-b", profiles, cfg.CPFs, func(i int, c string) bson.D {
		return bson.D{
			{Key: "birth_date", Value: fmt.Sprintf("19%02d-%02d-%02d", 50+i%50, 1+i%12, 1+i%28)},
			{Key: "address", Value: bson.D{{Key: "street", Value: "Rua Sintética"}, {Key: "number", Value: fmt.Sprint(i % 9999)},
				{Key: "complement", Value: ""}, {Key: "district", Value: "Centro"}, {Key: "city", Value: "São Paulo"},
				{Key: "state", Value: "SP"}, {Key: "postal_code", Value: "01010000"}}},
			{Key: "assets", Value: bson.A{bson.D{{Key: "id", Value: "seed-" + c}, {Key: "kind", Value: "vehicle"},
				{Key: "description", Value: "Hatch"}, {Key: "value_cents", Value: int64(1_000_000 + i%5_000_000)}, {Key: "currency", Value: "BRL"}}}},
			{Key: "income_sources", Value: bson.A{bson.D{{Key: "id", Value: "seed-" + c}, {Key: "kind", Value: "salary"},
				{Key: "monthly_amount_cents", Value: int64(150_000 + i%2_000_000)}, {Key: "currency", Value: "BRL"}, {Key: "since", Value: "2020-01-01"}}}},
			{Key: "debt_summary", Value: bson.D{{Key: "version", Value: int64(1)}, {Key: "open_count", Value: int32(i % 3)},
				{Key: "open_amount_cents", Value: int64(i%3) * 125_000}, {Key: "currency", Value: "BRL"}, {Key: "as_of", Value: now}}},
			{Key: "updated_at", Value: now},
		}
	}); err != nil {
		return err
	}
	basec := client.Database("strata_basec" + cfg.DatabaseSuffix)
	purchaseAt := func(i int) time.Time { return now.Add(-time.Duration(i%1000) * time.Hour) }
	if err := seedMongo(ctx, out, "base-c", basec.Collection("activity"), cfg.CPFs, func(i int, c string) bson.D {
		return bson.D{
			{Key: "last_purchase", Value: bson.D{{Key: "occurred_at", Value: purchaseAt(i)}, {Key: "amount_cents", Value: int64(1000 + i%100_000)},
				{Key: "currency", Value: "BRL"}, {Key: "merchant", Value: "Loja Sintética"}, {Key: "installments", Value: int32(1 + i%12)}}},
			{Key: "movements_inline", Value: true},
			{Key: "updated_at", Value: now},
		}
	}); err != nil {
		return err
	}
	if err := seedMongo(ctx, out, "base-c movements", basec.Collection("recent_movements"), cfg.CPFs, func(i int, c string) bson.D {
		return bson.D{{Key: "items", Value: bson.A{bson.D{{Key: "_id", Value: "seed-" + c}, {Key: "cpf", Value: c},
			{Key: "amount_cents", Value: int64(500 + i%50_000)}, {Key: "currency", Value: "BRL"}, {Key: "direction", Value: "credit"},
			{Key: "description", Value: "salário"}, {Key: "occurred_at", Value: purchaseAt(i)}}}}}
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded %d synthetic CPFs in every base in %s\n", cfg.CPFs, time.Since(start).Round(time.Second))
	return nil
}

// seedBaseA seeds Base A through its own tool (basea-seed) and settings.
func seedBaseA(ctx context.Context, cfg SeedConfig, stores *Stores, out io.Writer) error {
	secrets := &secretStore{dir: filepath.Join(cfg.DataDir, "secrets")}
	// basea-seed needs only the database and the keys: no broker.
	spec, err := baseaSpec(Config{DataDir: cfg.DataDir, DatabaseSuffix: cfg.DatabaseSuffix}, stores, secrets, &broker{url: map[string]string{}, user: map[string]string{}}, map[string]string{})
	if err != nil {
		return fmt.Errorf("base-a settings: %w", err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(cfg.BinDir, "basea-seed"), "-cpfs", fmt.Sprint(cfg.CPFs))
	cmd.Env = append(os.Environ(), spec.env(1)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("basea-seed: %w", err)
	}
	return nil
}

// seedMongo inserts doc(i) for CPFs 0..n-1 into coll, 1,000 per
// unordered insert; documents that exist (duplicate _id) are left
// untouched, so seeding again adds only what is missing. (Inserts, not
// upserts: FerretDB v1 answers an insert of 1,000 documents in ~40 ms but
// takes ~2 ms per upsert.)
func seedMongo(ctx context.Context, out io.Writer, name string, coll *mongo.Collection, n int, doc func(i int, cpf string) bson.D) error {
	const batch = 1000
	var added int64
	docs := make([]any, 0, batch)
	for start := 0; start < n; start += batch {
		docs = docs[:0]
		for i := start; i < min(start+batch, n); i++ {
			c := SyntheticCPF(i)
			docs = append(docs, append(bson.D{{Key: "_id", Value: c}}, doc(i, c)...))
		}
		res, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
			added += int64(len(res.InsertedIDs))
		case errors.As(err, &bwe) && bwe.WriteConcernError == nil && allDuplicates(bwe):
			added += int64(len(docs) - len(bwe.WriteErrors))
		default:
			return fmt.Errorf("%s: %w", name, err)
		}
		done := min(start+batch, n)
		fmt.Fprintf(out, "\r%s %s %d/%d", name, progressBar(done, n), done, n)
	}
	fmt.Fprintf(out, "\n%s: %d added, %d already there\n", name, added, int64(n)-added)
	return nil
}

func allDuplicates(e mongo.BulkWriteException) bool {
	for _, we := range e.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// progressBar draws a 30-character bar.
func progressBar(done, total int) string {
	const w = 30
	k := done * w / max(total, 1)
	b := make([]byte, w)
	for i := range b {
		b[i] = '.'
		if i < k {
			b[i] = '#'
		}
	}
	return "[" + string(b) + "]"
}
