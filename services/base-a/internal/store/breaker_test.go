package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/services/base-a/internal/domain"
	"github.com/strata-bureau/strata/services/base-a/internal/store"
)

// A query that finds no row, or a domain refusal, is the database
// answering: a partner asking again and again for an audit entry or a head
// that does not exist must not open the breaker every partner shares. A
// real database failure still opens it.
func TestOnlyDatabaseFailuresOpenTheBreaker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   error
		opens bool
	}{
		{"no rows", pgx.ErrNoRows, false},
		{"no rows, wrapped", fmt.Errorf("proof: %w", pgx.ErrNoRows), false},
		{"not found", domain.ErrNotFound, false},
		{"invalid input", domain.ErrInvalid, false},
		{"grant used up", domain.ErrGrantUsedUp, false},
		{"caller gave up", context.Canceled, false},
		{"connection lost", errors.New("conn closed"), true},
		{"deadline", context.DeadlineExceeded, true},
	} {
		b := breaker.Standalone(breaker.Config{Name: tc.name, IsFailure: store.IsDBFailure})
		for range 10 {
			_ = b.Run(func() error { return tc.err })
		}
		if got := b.State() == breaker.Open; got != tc.opens {
			t.Errorf("%s: breaker open = %v, want %v", tc.name, got, tc.opens)
		}
	}
}
