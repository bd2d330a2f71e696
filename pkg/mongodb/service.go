package mongodb

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.opentelemetry.io/otel/metric"

	"github.com/strata-bureau/strata/pkg/retry"
)

// Service is a service's database beside the ids of the messages its
// consumers applied (Dedupe, collection processed_messages).
type Service struct {
	client *mongo.Client
	DB     *mongo.Database
	Dedupe *Dedupe
}

// OpenService connects the service name (its driver app name, command
// spans and meter) to database: each operation is bounded at 3 s, and the
// server has 30 s to first answer. Close disconnects.
func OpenService(ctx context.Context, uri, database, name string, meter metric.Meter) (*Service, error) {
	client, err := Connect(ctx, uri, Options{AppName: name, WaitFor: 30 * time.Second, Tracing: true, Timeout: 3 * time.Second, Meter: meter})
	if err != nil {
		return nil, err
	}
	db := client.Database(database)
	return &Service{client: client, DB: db, Dedupe: NewDedupe(db, "processed_messages")}, nil
}

// EnsureIndexes creates the indexes of the dedupe store and of each of
// stores, each retried (replicas start together).
func (s *Service) EnsureIndexes(ctx context.Context, stores ...interface {
	EnsureIndexes(ctx context.Context) error
}) error {
	if err := retry.Do(ctx, 5, s.Dedupe.EnsureIndexes); err != nil {
		return err
	}
	for _, st := range stores {
		if err := retry.Do(ctx, 5, st.EnsureIndexes); err != nil {
			return err
		}
	}
	return nil
}

// Close disconnects, even once ctx has ended.
func (s *Service) Close(ctx context.Context) { _ = s.client.Disconnect(context.WithoutCancel(ctx)) }
