package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrUnavailable wraps every error of the store's driver calls.
var ErrUnavailable = errors.New("mongodb: store unavailable")

// Dedupe keeps the ids of applied messages, one document each
// ({_id: id, at: time}), for pkg/consumer. It needs no TTL index (FerretDB
// v1 has none): Prune deletes by the indexed at field.
type Dedupe struct {
	c *mongo.Collection
}

// NewDedupe returns a dedupe store on the collection named name in db
// (the services use "processed_messages").
func NewDedupe(db *mongo.Database, name string) *Dedupe {
	return &Dedupe{c: db.Collection(name)}
}

// EnsureIndexes creates the index Prune uses; it is idempotent.
func (s *Dedupe) EnsureIndexes(ctx context.Context) error {
	_, err := s.c.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "at", Value: 1}}, Options: options.Index().SetName("at"),
	})
	if err != nil {
		return fmt.Errorf("%s index: %w", s.c.Name(), err)
	}
	return nil
}

// Seen reports whether id was applied.
func (s *Dedupe) Seen(ctx context.Context, id string) (bool, error) {
	err := s.c.FindOne(ctx, bson.M{"_id": id}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return true, nil
}

// Mark records that id was applied at at; marking it again is no error.
func (s *Dedupe) Mark(ctx context.Context, id string, at time.Time) error {
	_, err := s.c.InsertOne(ctx, bson.M{"_id": id, "at": at})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Prune deletes the ids applied before before and returns how many.
func (s *Dedupe) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.c.DeleteMany(ctx, bson.M{"at": bson.M{"$lt": before}})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return res.DeletedCount, nil
}

// Count returns how many ids are kept (for tests and metrics).
func (s *Dedupe) Count(ctx context.Context) (int64, error) {
	n, err := s.c.CountDocuments(ctx, bson.M{})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n, nil
}
