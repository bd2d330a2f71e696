package app_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/metadata"

	"github.com/strata-bureau/strata/pkg/testenv"
	basebv1 "github.com/strata-bureau/strata/proto/gen/go/baseb/v1"
	"github.com/strata-bureau/strata/services/base-b/internal/authz"
	"github.com/strata-bureau/strata/services/base-b/internal/oidctest"
)

// BenchmarkBaseB, read as ratios within one run:
//
//	GetProfile_with_token   gRPC GetProfile, JWT verified on every call
//	verify_token            the verification alone (RS256, cached JWKS)
//	baseline_mongo_find     a bare FindOne by _id on the same Mongo-wire server
func BenchmarkBaseB(b *testing.B) {
	c := newCluster(b)
	r, person := c.startSeeded(50)
	tok := c.issuer.Token(b, oidctest.Claims{Subject: "bench", Audience: audience, Scope: "base-b:read"})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	b.Run("GetProfile_with_token", func(b *testing.B) {
		testenv.MeasureLatency(b, func() error {
			_, err := r.client.GetProfile(ctx, &basebv1.GetProfileRequest{Cpf: person})
			return err
		})
	})
	b.Run("verify_token", func(b *testing.B) {
		v, err := authz.NewVerifier(context.Background(), authz.Options{Issuer: c.issuer.URL, Audience: audience})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline_mongo_find", func(b *testing.B) {
		coll := c.db.Collection("profiles")
		testenv.MeasureLatency(b, func() error {
			return coll.FindOne(context.Background(), bson.M{"_id": person}).Err()
		})
	})
}
