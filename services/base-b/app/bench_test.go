package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/strata-bureau/strata/pkg/config"
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
		vc := authz.Config{Issuer: c.issuer.URL, Mapping: authz.Mapping{Audiences: []string{audience}}}
		if err := config.Defaults(context.Background(), &vc); err != nil {
			b.Fatal(err)
		}
		v, err := authz.NewVerifier(context.Background(), authz.Options{Config: vc})
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

// BenchmarkBaseBReadCachedVsUncached is one gRPC GetProfile (JWT verified
// on every call, over mTLS) on a replica with the profile cache and on one
// whose entries expire at once (PROFILE_CACHE_TTL=1ns: every read loads
// from the Mongo-wire store, as before the cache), beside the transport
// floor (a gRPC health check on the same replica). The three calls are
// interleaved in every iteration, so they share the machine's conditions;
// the ratios are what to read:
//
//	cached-p50-µs, uncached-p50-µs, health-p50-µs   per variant (and p99s)
//	uncached/cached                                  p50 ratio
//	cached/health                                    p50 ratio to the floor
func BenchmarkBaseBReadCachedVsUncached(b *testing.B) {
	c := newCluster(b)
	cached, person := c.startSeeded(60)
	c.env["BASEB_PROFILE_CACHE_TTL"] = "1ns"
	uncached := c.start()
	delete(c.env, "BASEB_PROFILE_CACHE_TTL")
	tok := c.issuer.Token(b, oidctest.Claims{Subject: "bench", Audience: audience, Scope: "base-b:read"})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	hc := healthpb.NewHealthClient(c.dial(cached.addr, tester))
	req := &basebv1.GetProfileRequest{Cpf: person}
	for _, r := range []replica{cached, uncached} { // warm: connections, JWKS, cache
		for range 20 {
			if _, err := r.client.GetProfile(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	misses := uncached.metric(b, "strata_baseb_cache_lookups_total", `result="miss"`)
	finds := cached.metric(b, "strata_mongo_commands_total", `command="find"`)
	var tc, tu, th []time.Duration
	timed := func(into *[]time.Duration, op func() error) {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(t0))
	}
	b.ResetTimer()
	for range b.N {
		timed(&tc, func() error { _, err := cached.client.GetProfile(ctx, req); return err })
		timed(&tu, func() error { _, err := uncached.client.GetProfile(ctx, req); return err })
		timed(&th, func() error { _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); return err })
	}
	b.StopTimer()
	if n := uncached.metric(b, "strata_baseb_cache_lookups_total", `result="miss"`) - misses; n < float64(b.N) {
		b.Fatalf("the uncached replica missed %v times in %d reads", n, b.N)
	}
	if n := cached.metric(b, "strata_mongo_commands_total", `command="find"`) - finds; n != 0 {
		b.Fatalf("the cached replica sent %v finds", n)
	}
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(float64(len(d)-1)*p)].Nanoseconds()) / 1e3
	}
	pc, pu, ph := pct(tc, 0.5), pct(tu, 0.5), pct(th, 0.5)
	b.ReportMetric(pct(tc, 0.99), "cached-p99-µs")
	b.ReportMetric(pct(tu, 0.99), "uncached-p99-µs")
	b.ReportMetric(pc, "cached-p50-µs")
	b.ReportMetric(pu, "uncached-p50-µs")
	b.ReportMetric(ph, "health-p50-µs")
	b.ReportMetric(pu/pc, "uncached/cached")
	b.ReportMetric(pc/ph, "cached/health")
}
