package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
	"github.com/strata-bureau/strata/services/base-a/internal/crypto"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// BenchmarkBaseA, read as ratios within one run:
//
//	read_audited        GetPerson with a grant: grant check, use, audit insert, decrypt, one transaction
//	grant_and_read      RequestGrant then GetPerson (two audited transactions)
//	read_audited_parallel  throughput of audited reads from 8 concurrent callers
//	store_read_audited  the same audited read called on the store, without gRPC and mTLS
//	baseline_grpc_mtls  a gRPC health check on the same mTLS connection: the transport's floor
//	baseline_pgx_pk_select a bare pgx primary-key SELECT on the same database
func BenchmarkBaseA(b *testing.B) {
	e := newEnv(b)
	addr, _ := e.start()
	gw := e.people(addr, "gateway")
	seed(e.t, e.people(addr, "basea-loader"))
	ctx := context.Background()
	newGrant := func() string {
		g, err := gw.RequestGrant(ctx, &baseav1.RequestGrantRequest{Context: ctxFor("bank-a"), Cpf: maria,
			Purpose: baseav1.Purpose_PURPOSE_CREDIT_ANALYSIS, Reason: "benchmark of audited reads", Fields: []baseav1.Field{baseav1.Field_FIELD_NAME}, MaxUses: 10})
		if err != nil {
			b.Fatal(err)
		}
		return g.GetToken()
	}
	b.Run("read_audited", func(b *testing.B) {
		tok, uses := newGrant(), 0
		testenv.MeasureLatency(b, func() error {
			if uses == 10 {
				b.StopTimer()
				tok, uses = newGrant(), 0
				b.StartTimer()
			}
			uses++
			_, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: tok})
			return err
		})
	})
	b.Run("grant_and_read", func(b *testing.B) {
		testenv.MeasureLatency(b, func() error {
			tok := newGrant()
			_, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: tok})
			return err
		})
	})
	b.Run("read_audited_parallel", func(b *testing.B) {
		var reads atomic.Int64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			tok, uses := newGrant(), 0
			for pb.Next() {
				if uses == 10 {
					tok, uses = newGrant(), 0
				}
				uses++
				if _, err := gw.GetPerson(ctx, &baseav1.GetPersonRequest{Context: ctxFor("bank-a"), Cpf: maria, GrantToken: tok}); err != nil {
					b.Error(err)
					return
				}
				reads.Add(1)
			}
		})
		b.ReportMetric(float64(reads.Load())/b.Elapsed().Seconds(), "audited-reads/s")
	})
	b.Run("store_read_audited", func(b *testing.B) {
		pool, err := pgxpool.New(ctx, e.appURL)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		keys, err := crypto.ParseKeys(e.vars["BASEA_DATA_KEYS"], e.vars["BASEA_BLIND_INDEX_KEY"])
		if err != nil {
			b.Fatal(err)
		}
		st := store.New(pool, keys, breaker.Standalone(breaker.Config{Name: "bench"}))
		caller := domain.Caller{PartnerID: "bank-a", Identity: "gateway", ClientIP: "203.0.113.7"}
		tok, uses := newGrant(), 0
		testenv.MeasureLatency(b, func() error {
			if uses == 10 {
				b.StopTimer()
				tok, uses = newGrant(), 0
				b.StartTimer()
			}
			uses++
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := st.ReadWithGrant(dctx, caller, maria, tok, []string{domain.FieldName})
			return err
		})
	})
	b.Run("baseline_grpc_mtls", func(b *testing.B) {
		hc := healthpb.NewHealthClient(e.dial(addr, "gateway"))
		testenv.MeasureLatency(b, func() error {
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		})
	})
	b.Run("baseline_pgx_pk_select", func(b *testing.B) {
		pool, err := pgxpool.New(ctx, e.appURL)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		var idx []byte
		if err := pool.QueryRow(ctx, "SELECT cpf_index FROM people LIMIT 1").Scan(&idx); err != nil {
			b.Fatal(err)
		}
		testenv.MeasureLatency(b, func() error {
			var name []byte
			return pool.QueryRow(ctx, "SELECT name_enc FROM people WHERE cpf_index = $1", idx).Scan(&name)
		})
	})
}
