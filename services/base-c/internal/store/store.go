// Package store keeps Base C's data in a Mongo-wire database. It needs only
// single-document atomic updates, unique indexes and sorted cursors, so the
// same code runs on FerretDB locally and on a MongoDB replica set.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Store is the Mongo store.
type Store struct {
	activity  *mongo.Collection
	movements *mongo.Collection
	accounts  *mongo.Collection
	processed *mongo.Collection
}

// New returns a store on db.
func New(db *mongo.Database) *Store {
	return &Store{
		activity:  db.Collection("activity"),
		movements: db.Collection("movements"),
		accounts:  db.Collection("accounts"),
		processed: db.Collection("processed_messages"),
	}
}

// EnsureIndexes creates the indexes the queries need; it is idempotent.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	_, err := s.movements.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "cpf", Value: 1}, {Key: "occurred_at", Value: -1}, {Key: "_id", Value: -1}},
		Options: options.Index().SetName("cpf_occurred_at"),
	})
	if err != nil {
		return fmt.Errorf("movements index: %w", err)
	}
	_, err = s.processed.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "at", Value: 1}},
		Options: options.Index().SetName("at"),
	})
	if err != nil {
		return fmt.Errorf("processed index: %w", err)
	}
	return nil
}

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error {
	return s.activity.Database().Client().Ping(ctx, nil)
}

type lastQueryDoc struct {
	QueriedAt time.Time `bson:"queried_at"`
	PartnerID string    `bson:"partner_id"`
	ClientIP  string    `bson:"client_ip"`
	Base      string    `bson:"base"`
}

type purchaseDoc struct {
	AmountCents  int64     `bson:"amount_cents"`
	Currency     string    `bson:"currency"`
	Merchant     string    `bson:"merchant"`
	Installments int32     `bson:"installments"`
	OccurredAt   time.Time `bson:"occurred_at"`
}

type activityDoc struct {
	CPF          string        `bson:"_id"`
	LastQuery    *lastQueryDoc `bson:"last_query,omitempty"`
	LastPurchase *purchaseDoc  `bson:"last_purchase,omitempty"`
	UpdatedAt    time.Time     `bson:"updated_at"`
}

type movementDoc struct {
	ID          string    `bson:"_id"`
	CPF         string    `bson:"cpf"`
	AmountCents int64     `bson:"amount_cents"`
	Currency    string    `bson:"currency"`
	Direction   string    `bson:"direction"`
	Description string    `bson:"description"`
	OccurredAt  time.Time `bson:"occurred_at"`
}

func (d movementDoc) domain() domain.Movement {
	return domain.Movement{ID: d.ID, CPF: d.CPF, AmountCents: d.AmountCents, Currency: d.Currency,
		Direction: domain.Direction(d.Direction), Description: d.Description, OccurredAt: d.OccurredAt.UTC()}
}

// GetActivity returns the CPF's activity with its latest n movements, or
// ErrNotFound when nothing is known about it.
func (s *Store) GetActivity(ctx context.Context, cpf string, n int) (*domain.Activity, error) {
	var doc activityDoc
	err := s.activity.FindOne(ctx, bson.M{"_id": cpf}).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	a := &domain.Activity{CPF: cpf}
	if err == nil {
		if q := doc.LastQuery; q != nil {
			a.LastQuery = &domain.LastQuery{QueriedAt: q.QueriedAt.UTC(), PartnerID: q.PartnerID, ClientIP: q.ClientIP, Base: q.Base}
		}
		if p := doc.LastPurchase; p != nil {
			a.LastPurchase = &domain.Purchase{AmountCents: p.AmountCents, Currency: p.Currency, Merchant: p.Merchant, Installments: p.Installments, OccurredAt: p.OccurredAt.UTC()}
		}
	}
	ms, err := s.ListMovements(ctx, domain.MovementFilter{CPF: cpf, Limit: n})
	if err != nil {
		return nil, err
	}
	a.Movements = ms
	if a.Empty() {
		return nil, domain.ErrNotFound
	}
	return a, nil
}

// ListMovements returns movements newest first.
func (s *Store) ListMovements(ctx context.Context, f domain.MovementFilter) ([]domain.Movement, error) {
	filter := bson.M{"cpf": f.CPF}
	occurred := bson.M{}
	if !f.From.IsZero() {
		occurred["$gte"] = f.From
	}
	if !f.To.IsZero() {
		occurred["$lt"] = f.To
	}
	if len(occurred) > 0 {
		filter["occurred_at"] = occurred
	}
	if f.After != nil {
		// Strictly after the cursor in (occurred_at desc, _id desc) order.
		filter = bson.M{"$and": bson.A{filter, bson.M{"$or": bson.A{
			bson.M{"occurred_at": bson.M{"$lt": f.After.OccurredAt}},
			bson.M{"occurred_at": f.After.OccurredAt, "_id": bson.M{"$lt": f.After.ID}},
		}}}}
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "occurred_at", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(f.Limit))
	cur, err := s.movements.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	var docs []movementDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	out := make([]domain.Movement, len(docs))
	for i, d := range docs {
		out[i] = d.domain()
	}
	return out, nil
}

// Seen reports whether the message was already applied.
func (s *Store) Seen(ctx context.Context, messageID string) (bool, error) {
	err := s.processed.FindOne(ctx, bson.M{"_id": messageID}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return true, nil
}

// MarkProcessed records that the message was applied. Every apply is itself
// idempotent, so a crash between the apply and this mark only costs a
// harmless second apply on redelivery.
func (s *Store) MarkProcessed(ctx context.Context, messageID string, at time.Time) error {
	_, err := s.processed.InsertOne(ctx, bson.M{"_id": messageID, "at": at})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return nil
}

// PruneProcessed deletes dedupe markers older than before (FerretDB has no
// TTL indexes, so clean-up is explicit).
func (s *Store) PruneProcessed(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.processed.DeleteMany(ctx, bson.M{"at": bson.M{"$lt": before}})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return res.DeletedCount, nil
}

// SetLastQuery records q unless a newer query is already recorded.
func (s *Store) SetLastQuery(ctx context.Context, cpf string, q domain.LastQuery) error {
	doc := lastQueryDoc{QueriedAt: q.QueriedAt.UTC(), PartnerID: q.PartnerID, ClientIP: q.ClientIP, Base: q.Base}
	return s.setIfNewer(ctx, cpf, "last_query", "queried_at", q.QueriedAt, doc)
}

// SetLastPurchase records p unless a newer purchase is already recorded.
func (s *Store) SetLastPurchase(ctx context.Context, cpf string, p domain.Purchase) error {
	doc := purchaseDoc{AmountCents: p.AmountCents, Currency: p.Currency, Merchant: p.Merchant, Installments: p.Installments, OccurredAt: p.OccurredAt.UTC()}
	return s.setIfNewer(ctx, cpf, "last_purchase", "occurred_at", p.OccurredAt, doc)
}

// setIfNewer sets field to value on the CPF's document when the stored
// field.timeField is older (or missing): one atomic single-document update,
// idempotent and safe against events arriving out of order.
func (s *Store) setIfNewer(ctx context.Context, cpf, field, timeField string, at time.Time, value any) error {
	now := time.Now().UTC()
	// Make sure the document exists (no-op when it does).
	_, err := s.activity.UpdateOne(ctx, bson.M{"_id": cpf},
		bson.M{"$setOnInsert": bson.M{"updated_at": now}}, options.UpdateOne().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	path := field + "." + timeField
	_, err = s.activity.UpdateOne(ctx,
		bson.M{"_id": cpf, "$or": bson.A{
			bson.M{field: bson.M{"$exists": false}},
			bson.M{path: bson.M{"$lt": at.UTC()}},
		}},
		bson.M{"$set": bson.M{field: value, "updated_at": now}})
	if err != nil {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return nil
}

// AddMovement appends m; a movement with the same ID is kept as it was.
func (s *Store) AddMovement(ctx context.Context, m domain.Movement) error {
	_, err := s.movements.InsertOne(ctx, movementDoc{ID: m.ID, CPF: m.CPF, AmountCents: m.AmountCents,
		Currency: m.Currency, Direction: string(m.Direction), Description: m.Description, OccurredAt: m.OccurredAt.UTC()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("%w: %w", domain.ErrUnavailable, err)
	}
	return nil
}
