package auth_test

import (
	"context"
	"testing"

	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// memStore is an in-memory AccountStore: these benchmarks measure the
// authenticator's own cost, not the database's.
type memStore struct{ acct *domain.Account }

func (m *memStore) GetAccount(context.Context, string) (*domain.Account, error) { return m.acct, nil }

func newAuth(b *testing.B) *auth.Authenticator {
	h, err := auth.Hash("bench-password-1", auth.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	a, err := auth.New(&memStore{acct: &domain.Account{Username: "u", PasswordHash: h}}, auth.Options{}, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkAuth/cache_hit is the hot path of every Base C call;
// BenchmarkAuth/argon2id_cold is a first (or post-invalidation) check.
func BenchmarkAuth(b *testing.B) {
	b.Run("cache_hit", func(b *testing.B) {
		a := newAuth(b)
		ctx := context.Background()
		if _, err := a.Authenticate(ctx, "u", "bench-password-1", auth.Source{PartnerID: "p", ClientIP: "127.0.0.1"}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := a.Authenticate(ctx, "u", "bench-password-1", auth.Source{PartnerID: "p", ClientIP: "127.0.0.1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("argon2id_cold", func(b *testing.B) {
		a := newAuth(b)
		ctx := context.Background()
		b.ResetTimer()
		for range b.N {
			a.Invalidate("u")
			if _, err := a.Authenticate(ctx, "u", "bench-password-1", auth.Source{PartnerID: "p", ClientIP: "127.0.0.1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
