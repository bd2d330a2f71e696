package app_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/pkg/testenv"
	"github.com/strata-bureau/strata/proto/eventtypes"
	basecv1 "github.com/strata-bureau/strata/proto/gen/go/basec/v1"
)

// Benchmarks of one make bench run, to be read as ratios:
//
//	BenchmarkBaseC/GetActivity_cached   gRPC GetActivity with basic auth, cache hit
//	BenchmarkBaseC/baseline_mongo_find  a bare FindOne by _id on the same Mongo-wire server
//	BenchmarkBaseC/baseline_redis_get   a Redis GET round trip (when STRATA_BENCH_REDIS_ADDR is set)
func BenchmarkBaseC(b *testing.B) {
	c := newCluster(b, "")
	r := c.start("bench")
	ctx := as(context.Background(), adminUser, adminPass)
	person := newCPF(7)
	c.publish(eventtypes.FinancialMovementRecorded, uuid.NewString(), movement(person, 1234, time.Now()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("demo activity never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}

	b.Run("GetActivity_cached", func(b *testing.B) {
		testenv.MeasureLatency(b, func() error {
			_, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person})
			return err
		})
	})
	b.Run("GetActivity_cached_parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.act.GetActivity(ctx, &basecv1.GetActivityRequest{Cpf: person}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("baseline_grpc_health", func(b *testing.B) {
		hc := healthpb.NewHealthClient(r.conn)
		testenv.MeasureLatency(b, func() error {
			_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
			return err
		})
	})
	b.Run("baseline_mongo_find", func(b *testing.B) {
		coll := c.db.Collection("bench")
		if _, err := coll.ReplaceOne(context.Background(), bson.M{"_id": person}, bson.M{"_id": person, "v": 1}, options.Replace().SetUpsert(true)); err != nil {
			b.Fatal(err)
		}
		testenv.MeasureLatency(b, func() error {
			return coll.FindOne(context.Background(), bson.M{"_id": person}).Err()
		})
	})
	b.Run("baseline_redis_get", func(b *testing.B) {
		addr := os.Getenv("STRATA_BENCH_REDIS_ADDR")
		if addr == "" {
			b.Skip("set STRATA_BENCH_REDIS_ADDR (make bench starts redis-server) for the Redis baseline")
		}
		rc := redis.NewClient(&redis.Options{Addr: addr})
		defer rc.Close()
		if err := rc.Set(context.Background(), person, "x", 0).Err(); err != nil {
			b.Fatal(err)
		}
		testenv.MeasureLatency(b, func() error {
			return rc.Get(context.Background(), person).Err()
		})
	})
}
