package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-bureau/strata/pkg/testenv"
	baseav1 "github.com/strata-bureau/strata/proto/gen/go/basea/v1"
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
	addr, _, gw := e.startSeeded()
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
		nextToken := tenUses(b, newGrant)
		testenv.MeasureLatency(b, func() error {
			tok := nextToken()
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
		st, _ := e.openStore(b, "bench")
		caller := domain.Caller{PartnerID: "bank-a", Identity: "gateway", ClientIP: "203.0.113.7"}
		nextToken := tenUses(b, newGrant)
		testenv.MeasureLatency(b, func() error {
			tok := nextToken()
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
		pool := e.appPool(b)
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

// BenchmarkAuditLog prices the verifiable log, on its own database:
//
//	chain_hmac_only      the chainer's work per entry with the HMAC chain alone (before this log)
//	chain_hmac_merkle    the same with the Merkle tree and signed heads: what each audited read adds, off its path
//	verify               a full verification (HMAC links, Merkle leaves and stored hashes, heads, grants) in entries/s
func BenchmarkAuditLog(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	setup := func(b *testing.B) (*env, *store.Store, store.ChainOptions) {
		e := newEnv(b)
		st, akeys := e.openStore(b, "bench")
		e.admin(`INSERT INTO audit_log (entry_id, at, partner_id, caller, cpf_index, cpf_enc, purpose, reason, fields, outcome, client_ip, trace_id, grant_id)
			SELECT gen_random_uuid(), now(), 'bank-a', 'gateway', sha256(g::text::bytea), sha256(sha256(g::text::bytea)) || sha256(g::text::bytea),
				'credit_analysis', 'loan application number ' || g, ARRAY['name','address'], 'allowed', '203.0.113.7',
				'4bf92f3577b34da6a3ce929d0e0e4736', gen_random_uuid()
			FROM generate_series(1, $1) g`, n)
		return e, st, store.ChainOptions{Keys: akeys, CheckpointInterval: time.Millisecond}
	}
	chain := func(b *testing.B, st *store.Store, o store.ChainOptions) {
		done := 0
		for done < n {
			k, err := st.ChainPending(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			done += k
		}
	}
	for _, v := range []struct {
		name     string
		hmacOnly bool
	}{{"chain_hmac_only", true}, {"chain_hmac_merkle", false}} {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				_, st, o := setup(b)
				o.HMACOnly = v.hmacOnly
				b.StartTimer()
				chain(b, st, o)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
	b.Run("verify", func(b *testing.B) {
		_, st, o := setup(b)
		chain(b, st, o)
		o.Grace = time.Hour
		b.ResetTimer()
		for range b.N {
			v, err := st.Verify(ctx, o, 1, 0)
			if err != nil || !v.OK || v.CheckedEntries != n {
				b.Fatalf("verify: %+v %v", v, err)
			}
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
	})
}

// tenUses returns the token of a grant good for ten reads, taking a new
// grant, outside b's timer, once it is used up.
func tenUses(b *testing.B, newGrant func() string) func() string {
	tok, uses := newGrant(), 0
	return func() string {
		if uses == 10 {
			b.StopTimer()
			tok, uses = newGrant(), 0
			b.StartTimer()
		}
		uses++
		return tok
	}
}
