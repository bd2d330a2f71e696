// Package store keeps Base B's profiles in a Mongo-wire database with
// single-document atomic updates only (FerretDB locally, MongoDB in
// production).
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/services/base-b/internal/domain"
)

// Store is the Mongo store.
type Store struct {
	profiles *mongo.Collection
	// accesses holds each CPF's latest access (collection last_access,
	// keyed by CPF), apart from the profile: FerretDB's updates are
	// read-modify-write, so a last_access flush racing a profile write on
	// the same document could undo that write.
	accesses *mongo.Collection
}

// New returns a store on db.
func New(db *mongo.Database) *Store {
	return &Store{profiles: db.Collection("profiles"), accesses: db.Collection("last_access")}
}

// EnsureIndexes creates the indexes the queries need.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	_, err := s.profiles.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "updated_at", Value: 1}}, Options: options.Index().SetName("updated_at"),
	})
	if err != nil {
		return fmt.Errorf("profiles index: %w", err)
	}
	return nil
}

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error { return s.profiles.Database().Client().Ping(ctx, nil) }

func unavailable(err error) error { return fmt.Errorf("%w: %w", domain.ErrUnavailable, err) }

// Get returns a profile or ErrNotFound.
func (s *Store) Get(ctx context.Context, cpf string) (*domain.Profile, error) {
	var p domain.Profile
	err := s.profiles.FindOne(ctx, bson.M{"_id": cpf}, options.FindOne().SetProjection(bson.M{"last_access": 0})).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return &p, nil
}

// Upsert sets birth date and address, creating the profile if needed.
func (s *Store) Upsert(ctx context.Context, cpf, birthDate string, addr domain.Address) (*domain.Profile, error) {
	now := time.Now().UTC()
	err := mongodb.UpsertByID(ctx, s.profiles, cpf, bson.M{
		"$set":         bson.M{"birth_date": birthDate, "address": addr, "updated_at": now},
		"$setOnInsert": bson.M{"assets": bson.A{}, "income_sources": bson.A{}},
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return s.Get(ctx, cpf)
}

func (s *Store) modify(ctx context.Context, cpf string, update bson.M) error {
	if set, ok := update["$set"].(bson.M); ok {
		set["updated_at"] = time.Now().UTC()
	} else {
		update["$set"] = bson.M{"updated_at": time.Now().UTC()}
	}
	res, err := s.profiles.UpdateOne(ctx, bson.M{"_id": cpf}, update)
	if err != nil {
		return unavailable(err)
	}
	if res.MatchedCount == 0 {
		return domain.ErrNotFound
	}
	return nil
}

// AddAsset appends an asset.
func (s *Store) AddAsset(ctx context.Context, cpf string, a domain.Asset) error {
	return s.modify(ctx, cpf, bson.M{"$push": bson.M{"assets": a}})
}

// RemoveAsset removes an asset by id.
func (s *Store) RemoveAsset(ctx context.Context, cpf, id string) error {
	return s.removeFrom(ctx, cpf, "assets", id)
}

// AddIncome appends an income source.
func (s *Store) AddIncome(ctx context.Context, cpf string, i domain.IncomeSource) error {
	return s.modify(ctx, cpf, bson.M{"$push": bson.M{"income_sources": i}})
}

// RemoveIncome removes an income source by id.
func (s *Store) RemoveIncome(ctx context.Context, cpf, id string) error {
	return s.removeFrom(ctx, cpf, "income_sources", id)
}

func (s *Store) removeFrom(ctx context.Context, cpf, field, id string) error {
	// FerretDB v1's $pull removes only elements equal to the value given
	// (no conditions) and scans the collection for any filter but _id
	// alone: so read the element, then pull exactly it by _id. Items are
	// never modified in place, so the element read is the one stored.
	var doc bson.M
	err := s.profiles.FindOne(ctx, bson.D{{Key: "_id", Value: cpf}}, options.FindOne().SetProjection(bson.M{field: 1})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return domain.ErrNotFound
	}
	if err != nil {
		return unavailable(err)
	}
	items, _ := doc[field].(bson.A)
	var match any
	for _, it := range items {
		if d, ok := it.(bson.D); ok {
			for _, e := range d {
				if e.Key == "id" && e.Value == id {
					match = d
				}
			}
		}
	}
	if match == nil {
		return domain.ErrNotFound
	}
	return s.modify(ctx, cpf, bson.M{"$pullAll": bson.M{field: bson.A{match}}})
}

// ApplyDebtSummary stores a debt summary unless a newer version is there;
// a profile that does not exist yet is created to hold it.
func (s *Store) ApplyDebtSummary(ctx context.Context, cpf string, d domain.DebtSummary) error {
	// $max compares documents field by field in order: with version first
	// the highest version wins, atomically, in one upsert filtered on _id
	// alone (FerretDB v1 scans the collection for any other filter).
	sum := bson.D{{Key: "version", Value: d.Version}, {Key: "open_count", Value: d.OpenCount},
		{Key: "open_amount_cents", Value: d.OpenAmountCents}, {Key: "currency", Value: d.Currency}, {Key: "as_of", Value: d.AsOf.UTC()}}
	update := bson.D{
		{Key: "$max", Value: bson.D{{Key: "debt_summary", Value: sum}, {Key: "updated_at", Value: time.Now().UTC()}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "assets", Value: bson.A{}}, {Key: "income_sources", Value: bson.A{}}}},
	}
	if err := mongodb.UpsertByID(ctx, s.profiles, cpf, update); err != nil {
		return unavailable(err)
	}
	return nil
}

// Access is one CPF's latest access, for RecordAccesses.
type Access struct {
	Who, IP, What string
	At            time.Time
}

// accessMax is the last_access sub-document: "at" first, so $max keeps
// the latest access when replicas flush the same CPF out of order.
func accessMax(a Access) bson.D {
	return bson.D{{Key: "at", Value: a.At.UTC()}, {Key: "who", Value: a.Who}, {Key: "client_ip", Value: a.IP}, {Key: "what", Value: a.What}}
}

// RecordAccess records one access (see RecordAccesses).
func (s *Store) RecordAccess(ctx context.Context, cpf, who, ip, what string, at time.Time) error {
	return s.RecordAccesses(ctx, map[string]Access{cpf: {Who: who, IP: ip, What: what, At: at}})
}

// RecordAccesses writes the latest access of many CPFs in one bulk write
// to last_access (never to the profile), keeping the newer access where
// one is already stored.
func (s *Store) RecordAccesses(ctx context.Context, as map[string]Access) error {
	if len(as) == 0 {
		return nil
	}
	updates := make(map[string]bson.D, len(as))
	for cpf, a := range as {
		updates[cpf] = bson.D{{Key: "$max", Value: bson.D{{Key: "last_access", Value: accessMax(a)}}}}
	}
	if err := mongodb.UpsertManyByID(ctx, s.accesses, updates); err != nil {
		return unavailable(err)
	}
	return nil
}

// Filter selects profiles for export.
type Filter struct {
	AfterCPF    string
	UpdatedFrom time.Time
	UpdatedTo   time.Time
	Limit       int
}

// Page returns profiles in CPF order after f.AfterCPF: a stable order, so
// an export resumed from the last CPF it received has no gap and no
// duplicate.
func (s *Store) Page(ctx context.Context, f Filter) ([]domain.Profile, error) {
	cur, err := s.profiles.Find(ctx, f.query(), options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(f.Limit)).
		SetProjection(bson.M{"last_access": 0}))
	if err != nil {
		return nil, unavailable(err)
	}
	var out []domain.Profile
	if err := cur.All(ctx, &out); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// Count is the number of profiles Page would return over every page.
func (s *Store) Count(ctx context.Context, f Filter) (int64, error) {
	n, err := s.profiles.CountDocuments(ctx, f.query())
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}

func (f Filter) query() bson.M {
	q := bson.M{"_id": bson.M{"$gt": f.AfterCPF}}
	mongodb.During(q, "updated_at", f.UpdatedFrom, f.UpdatedTo)
	return q
}
