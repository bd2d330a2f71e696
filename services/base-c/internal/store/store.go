// Package store keeps Base C's data in a Mongo-wire database. It needs only
// single-document atomic updates, unique indexes and sorted cursors, so the
// same code runs on FerretDB locally and on a MongoDB replica set.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/strata-bureau/strata/pkg/mongodb"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// Store is the Mongo store.
type Store struct {
	activity  *mongo.Collection
	movements *mongo.Collection
	accounts  *mongo.Collection
	// queries holds each CPF's last query and recent its latest movements,
	// apart from activity: FerretDB v1 updates a document by
	// read-modify-write, so fields that different events update at once
	// live in different documents.
	queries *mongo.Collection
	recent  *mongo.Collection
}

// New returns a store on db.
func New(db *mongo.Database) *Store {
	return &Store{
		activity:  db.Collection("activity"),
		movements: db.Collection("movements"),
		accounts:  db.Collection("accounts"),
		queries:   db.Collection("last_queries"),
		recent:    db.Collection("recent_movements"),
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
	// Inline is true once the recent_movements document holds the latest
	// movements (activity from before it existed is filled from the
	// history on its next movement, and read from the history until then).
	Inline    bool      `bson:"movements_inline,omitempty"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// queryDoc is a CPF's last query (collection last_queries).
type queryDoc struct {
	CPF       string        `bson:"_id"`
	LastQuery *lastQueryDoc `bson:"last_query"`
}

// recentDoc holds a CPF's latest movements (collection recent_movements;
// at most about 2×recentKeep, trimmed on write), so a read needs finds by
// _id only: the movements collection is for paged history.
type recentDoc struct {
	CPF    string        `bson:"_id"`
	Recent []movementDoc `bson:"items"`
}

// recentKeep is how many movements an activity document keeps at least.
const recentKeep = 32

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
	// The three finds are independent: run at once, a read waits for the
	// slowest instead of their sum.
	var (
		doc                     activityDoc
		qd                      queryDoc
		rd                      recentDoc
		hasActivity, hasRecent  bool
		errActivity, errQueries error
		wg                      sync.WaitGroup
	)
	wg.Go(func() { hasActivity, errActivity = findByID(ctx, s.activity, cpf, &doc) })
	wg.Go(func() { _, errQueries = findByID(ctx, s.queries, cpf, &qd) })
	hasRecent, err := findByID(ctx, s.recent, cpf, &rd)
	wg.Wait()
	for _, e := range []error{errActivity, errQueries, err} {
		if e != nil {
			return nil, e
		}
	}
	a := &domain.Activity{CPF: cpf}
	// A last query stored with the activity itself predates last_queries.
	q := qd.LastQuery
	if l := doc.LastQuery; l != nil && (q == nil || l.QueriedAt.After(q.QueriedAt)) {
		q = l
	}
	if q != nil {
		a.LastQuery = &domain.LastQuery{QueriedAt: q.QueriedAt.UTC(), PartnerID: q.PartnerID, ClientIP: q.ClientIP, Base: q.Base}
	}
	if p := doc.LastPurchase; p != nil {
		a.LastPurchase = &domain.Purchase{AmountCents: p.AmountCents, Currency: p.Currency, Merchant: p.Merchant, Installments: p.Installments, OccurredAt: p.OccurredAt.UTC()}
	}
	switch {
	case hasRecent && n <= recentKeep:
		a.Movements = latest(rd.Recent, n)
	case hasRecent || (hasActivity && !doc.Inline):
		// Activity from before recent_movements existed (or more asked
		// for than kept): page the history (a scan on FerretDB; the cpf
		// index on MongoDB).
		ms, err := s.ListMovements(ctx, domain.MovementFilter{CPF: cpf, Limit: n})
		if err != nil {
			return nil, err
		}
		a.Movements = ms
	}
	if a.Empty() {
		return nil, domain.ErrNotFound
	}
	return a, nil
}

// unavailable is a driver error as the store returns it: the store being
// unavailable (retried by consumers, counted by the breaker).
func unavailable(err error) error { return fmt.Errorf("%w: %w", domain.ErrUnavailable, err) }

// findByID decodes the document with _id id into out and says whether
// there was one.
func findByID(ctx context.Context, c *mongo.Collection, id string, out any) (bool, error) {
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(out)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, unavailable(err)
	}
	return true, nil
}

// latest returns the n newest of docs, newest first (by occurred_at, then
// _id, as ListMovements orders them).
func latest(docs []movementDoc, n int) []domain.Movement {
	sorted := slices.Clone(docs)
	slices.SortFunc(sorted, newestFirst)
	sorted = slices.CompactFunc(sorted, func(a, b movementDoc) bool { return a.ID == b.ID })
	if len(sorted) > n {
		sorted = sorted[:n]
	}
	out := make([]domain.Movement, len(sorted))
	for i, d := range sorted {
		out[i] = d.domain()
	}
	return out
}

func newestFirst(a, b movementDoc) int {
	if c := b.OccurredAt.Compare(a.OccurredAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// ListMovements returns movements newest first.
func (s *Store) ListMovements(ctx context.Context, f domain.MovementFilter) ([]domain.Movement, error) {
	filter := bson.M{"cpf": f.CPF}
	mongodb.During(filter, "occurred_at", f.From, f.To)
	if f.After != nil {
		// Strictly after the cursor in (occurred_at desc, _id desc) order.
		// The cpf condition stays at the top level: the local FerretDB
		// pushes a top-level {field: string} down to the field's index
		// (deploy/local/third_party/ferretdb/PATCHES.md), so a page reads
		// one CPF's movements, not the collection.
		filter["$or"] = bson.A{
			bson.M{"occurred_at": bson.M{"$lt": f.After.OccurredAt}},
			bson.M{"occurred_at": f.After.OccurredAt, "_id": bson.M{"$lt": f.After.ID}},
		}
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "occurred_at", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(f.Limit))
	cur, err := s.movements.Find(ctx, filter, opts)
	if err != nil {
		return nil, unavailable(err)
	}
	var docs []movementDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, unavailable(err)
	}
	out := make([]domain.Movement, len(docs))
	for i, d := range docs {
		out[i] = d.domain()
	}
	return out, nil
}

// SetLastQuery records q unless a newer query is already recorded.
func (s *Store) SetLastQuery(ctx context.Context, cpf string, q domain.LastQuery) error {
	return s.SetLastQueries(ctx, map[string]domain.LastQuery{cpf: q})
}

// lastQueryMax is the last query as $max compares it: documents compare
// field by field in order, so with queried_at first the newest query wins,
// atomically and in one update by _id (FerretDB v1 pushes down only a
// filter on _id alone: any other condition in the filter scans the
// collection).
func lastQueryMax(q domain.LastQuery) bson.D {
	return bson.D{{Key: "queried_at", Value: q.QueriedAt.UTC()}, {Key: "partner_id", Value: q.PartnerID},
		{Key: "client_ip", Value: q.ClientIP}, {Key: "base", Value: q.Base}}
}

// SetLastQueries records, for each CPF, its last query unless a newer one
// is already stored: one bulk write of upserts by _id.
func (s *Store) SetLastQueries(ctx context.Context, qs map[string]domain.LastQuery) error {
	if len(qs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	updates := make(map[string]bson.D, len(qs))
	for cpf, q := range qs {
		updates[cpf] = bson.D{{Key: "$max", Value: bson.D{{Key: "last_query", Value: lastQueryMax(q)}, {Key: "updated_at", Value: now}}}}
	}
	if err := mongodb.UpsertManyByID(ctx, s.queries, updates); err != nil {
		return unavailable(err)
	}
	return nil
}

// SetLastPurchase records p as the CPF's last purchase unless a later one
// is already stored (occurred_at first, so $max keeps the latest).
func (s *Store) SetLastPurchase(ctx context.Context, cpf string, p domain.Purchase) error {
	doc := bson.D{{Key: "occurred_at", Value: p.OccurredAt.UTC()}, {Key: "amount_cents", Value: p.AmountCents},
		{Key: "currency", Value: p.Currency}, {Key: "merchant", Value: p.Merchant}, {Key: "installments", Value: p.Installments}}
	return s.upsert(ctx, cpf, bson.D{{Key: "$max", Value: bson.D{{Key: "last_purchase", Value: doc}, {Key: "updated_at", Value: time.Now().UTC()}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "movements_inline", Value: true}}}})
}

// upsert applies update to the CPF's activity document, creating it
// (mongodb.UpsertByID).
func (s *Store) upsert(ctx context.Context, cpf string, update bson.D) error {
	if err := mongodb.UpsertByID(ctx, s.activity, cpf, update); err != nil {
		return unavailable(err)
	}
	return nil
}

// AddMovement appends m; a movement with the same ID is kept as it was.
// It goes to the movements history and to the CPF's activity document,
// which keeps the latest ones for reads.
func (s *Store) AddMovement(ctx context.Context, m domain.Movement) error {
	doc := movementDoc{ID: m.ID, CPF: m.CPF, AmountCents: m.AmountCents,
		Currency: m.Currency, Direction: string(m.Direction), Description: m.Description, OccurredAt: m.OccurredAt.UTC().Truncate(time.Millisecond)}
	_, err := s.movements.InsertOne(ctx, doc)
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return unavailable(err)
	}
	if err := s.addRecent(ctx, m.CPF, []movementDoc{doc}); err != nil {
		return err
	}
	return s.confirmRecent(ctx, m.CPF, doc)
}

// confirmRecent re-adds doc to the CPF's recent movements until a read
// shows it there. MongoDB applies each update atomically, but FerretDB v1
// reads, modifies and writes a document back in separate steps, so two
// replicas adding movements of one CPF at once can lose one.
func (s *Store) confirmRecent(ctx context.Context, cpf string, doc movementDoc) error {
	for range 5 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		var now recentDoc
		if err := s.recent.FindOne(ctx, bson.D{{Key: "_id", Value: cpf}}).Decode(&now); err != nil {
			return unavailable(err)
		}
		if slices.ContainsFunc(now.Recent, func(d movementDoc) bool { return d.ID == doc.ID }) {
			return nil
		}
		if len(now.Recent) >= recentKeep && !slices.ContainsFunc(now.Recent, func(d movementDoc) bool { return newestFirst(d, doc) > 0 }) {
			return nil // older than every kept movement: trimmed, not lost
		}
		if err := s.addRecent(ctx, cpf, []movementDoc{doc}); err != nil {
			return err
		}
	}
	return nil
}

// addRecent adds docs to the CPF's recent movements ($addToSet: a
// redelivered movement is not added twice) and trims the list back to
// recentKeep once it holds twice that. Activity from before the recent
// list existed is first filled from the history (once).
func (s *Store) addRecent(ctx context.Context, cpf string, docs []movementDoc) error {
	var before recentDoc
	err := s.recent.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: cpf}},
		bson.D{{Key: "$addToSet", Value: bson.D{{Key: "items", Value: bson.D{{Key: "$each", Value: docs}}}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before)).Decode(&before)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return s.backfillRecent(ctx, cpf, docs)
	case err != nil:
		return unavailable(err)
	case len(before.Recent)+len(docs) <= 2*recentKeep:
		return nil
	}
	var now recentDoc
	if err := s.recent.FindOne(ctx, bson.D{{Key: "_id", Value: cpf}}).Decode(&now); err != nil {
		return unavailable(err)
	}
	if len(now.Recent) <= 2*recentKeep {
		return nil
	}
	sorted := slices.Clone(now.Recent)
	slices.SortFunc(sorted, newestFirst)
	_, err = s.recent.UpdateOne(ctx, bson.D{{Key: "_id", Value: cpf}},
		bson.D{{Key: "$pullAll", Value: bson.D{{Key: "items", Value: sorted[recentKeep:]}}}})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// backfillRecent runs when a CPF's recent list was just created: if the
// CPF had activity from before recent lists existed, its latest movements
// are copied from the history and the activity marked as complete.
func (s *Store) backfillRecent(ctx context.Context, cpf string, docs []movementDoc) error {
	var act activityDoc
	found, err := findByID(ctx, s.activity, cpf, &act)
	if err != nil || !found || act.Inline {
		return err
	}
	old, err := s.ListMovements(ctx, domain.MovementFilter{CPF: cpf, Limit: recentKeep})
	if err != nil {
		return err
	}
	fill := make([]movementDoc, 0, len(old))
	for _, m := range old {
		if !slices.ContainsFunc(docs, func(d movementDoc) bool { return d.ID == m.ID }) {
			fill = append(fill, movementDoc{ID: m.ID, CPF: m.CPF, AmountCents: m.AmountCents, Currency: m.Currency,
				Direction: string(m.Direction), Description: m.Description, OccurredAt: m.OccurredAt})
		}
	}
	if len(fill) > 0 {
		if _, err := s.recent.UpdateOne(ctx, bson.D{{Key: "_id", Value: cpf}},
			bson.D{{Key: "$addToSet", Value: bson.D{{Key: "items", Value: bson.D{{Key: "$each", Value: fill}}}}}}); err != nil {
			return unavailable(err)
		}
	}
	if _, err := s.activity.UpdateOne(ctx, bson.D{{Key: "_id", Value: cpf}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "movements_inline", Value: true}}}}); err != nil {
		return unavailable(err)
	}
	return nil
}
