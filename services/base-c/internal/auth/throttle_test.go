package auth_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

type accounts map[string]*domain.Account

func (a accounts) GetAccount(_ context.Context, u string) (*domain.Account, error) {
	if acct, ok := a[u]; ok {
		return acct, nil
	}
	return nil, domain.ErrNotFound
}

func newAuthn(t *testing.T, opts auth.Options) *auth.Authenticator {
	t.Helper()
	h, err := auth.Hash("victim-password-1", fast)
	if err != nil {
		t.Fatal(err)
	}
	opts.Params = fast
	a, err := auth.New(accounts{"victim": {Username: "victim", PasswordHash: h}}, opts, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The attack: another partner's wrong passwords locked the account
// for its owner. Now they slow down only the guessing source; the owner's
// correct password keeps working, cached or not, and from the same address.
func TestGuessingSlowsOnlyTheGuesser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAuthn(t, auth.Options{FreeFailures: 3, ThrottleBase: time.Hour, SourceFailureLimit: 1000})
	owner := auth.Source{PartnerID: "bank-a", ClientIP: "203.0.113.7"}
	hostile := auth.Source{PartnerID: "bank-b", ClientIP: "203.0.113.7"} // behind the same NAT
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", owner); err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for range 50 {
		_, err := a.Authenticate(ctx, "victim", "guess-guess-guess", hostile)
		switch {
		case errors.Is(err, domain.ErrThrottled):
			throttled++
		case !errors.Is(err, domain.ErrUnauthorized):
			t.Fatalf("wrong guess: %v", err)
		}
	}
	if throttled != 50-4 {
		t.Fatalf("want the guesser throttled after 3 free failures and one delayed one, throttled %d of 50", throttled)
	}
	// The owner: cached credential still good.
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", owner); err != nil {
		t.Fatalf("owner refused while someone else guesses: %v", err)
	}
	// Not cached (after an invalidation, or on another replica): a cold
	// check from the owner is not throttled either.
	a.Invalidate("victim")
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", owner); err != nil {
		t.Fatalf("owner's cold check refused: %v", err)
	}
	// Even the guesser's own correct password is throttled only while its
	// delay lasts: it is a throttle, not a lock.
	if _, err := a.Authenticate(ctx, "victim", "wrong-again-wrong", hostile); !errors.Is(err, domain.ErrThrottled) {
		t.Fatalf("guesser not throttled: %v", err)
	}
}

// Counts decay: after the delay and some quiet, a source tries again.
func TestThrottleDelaysGrowAndDecay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAuthn(t, auth.Options{FreeFailures: 1, ThrottleBase: 20 * time.Millisecond, ThrottleMax: 80 * time.Millisecond,
		ThrottleHalfLife: 50 * time.Millisecond, SourceFailureLimit: 1000})
	src := auth.Source{PartnerID: "bank-b", ClientIP: "198.51.100.1"}
	try := func() error { _, err := a.Authenticate(ctx, "victim", "guess-guess-guess", src); return err }
	if err := try(); !errors.Is(err, domain.ErrUnauthorized) { // free
		t.Fatal(err)
	}
	if err := try(); !errors.Is(err, domain.ErrUnauthorized) { // second: now delayed
		t.Fatal(err)
	}
	if err := try(); !errors.Is(err, domain.ErrThrottled) {
		t.Fatalf("want throttled right after, got %v", err)
	}
	time.Sleep(300 * time.Millisecond) // past the delay; the count has decayed
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", src); err != nil {
		t.Fatalf("a source that stopped failing is still refused: %v", err)
	}
}

// Guessing across many accounts is bounded per source too, and unknown
// accounts are throttled exactly like known ones.
func TestSourceLimitAcrossAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAuthn(t, auth.Options{FreeFailures: 100, SourceFailureLimit: 5})
	src := auth.Source{PartnerID: "bank-b", ClientIP: "198.51.100.1"}
	for i := range 5 {
		user := []string{"victim", "nobody-1", "nobody-2", "nobody-3", "nobody-4"}[i]
		if _, err := a.Authenticate(ctx, user, "guess-guess-guess", src); !errors.Is(err, domain.ErrUnauthorized) {
			t.Fatalf("%s: %v", user, err)
		}
	}
	for _, user := range []string{"victim", "nobody-9"} {
		if _, err := a.Authenticate(ctx, user, "guess-guess-guess", src); !errors.Is(err, domain.ErrThrottled) {
			t.Fatalf("%s: source past its limit not throttled: %v", user, err)
		}
	}
	other := auth.Source{PartnerID: "bank-a", ClientIP: "198.51.100.1"}
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", other); err != nil {
		t.Fatalf("another partner at the same address was blocked: %v", err)
	}
}

// A check that cannot finish within the caller's deadline is not started:
// the answer is "overloaded" (429), not a deadline the caller would take
// for the base failing.
func TestNoColdCheckPastTheDeadline(t *testing.T) {
	t.Parallel()
	a := newAuthn(t, auth.Options{})
	src := auth.Source{PartnerID: "bank-a", ClientIP: "203.0.113.7"}
	// Learn how long a check takes.
	if _, err := a.Authenticate(context.Background(), "victim", "victim-password-1", src); err != nil {
		t.Fatal(err)
	}
	a.Invalidate("victim")
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", src); !errors.Is(err, domain.ErrOverloaded) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want overloaded (or the caller's own deadline), got %v", err)
	}
}

// A guesser rotating IPv6 addresses within its /64 is one source: the
// per-source limit holds across the rotation, while a client in another
// /64 of the same partner is not blocked.
func TestIPv6RotationWithinASlashSixtyFourIsOneSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAuthn(t, auth.Options{FreeFailures: 100, SourceFailureLimit: 5})
	for i := range 5 {
		src := auth.Source{PartnerID: "bank-b", ClientIP: fmt.Sprintf("2001:db8:5:6::%x", i+1)}
		if _, err := a.Authenticate(ctx, "victim", "guess-guess-guess", src); !errors.Is(err, domain.ErrUnauthorized) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	rotated := auth.Source{PartnerID: "bank-b", ClientIP: "2001:db8:5:6:ffff::1"}
	if _, err := a.Authenticate(ctx, "victim", "guess-guess-guess", rotated); !errors.Is(err, domain.ErrThrottled) {
		t.Fatalf("a new address in the same /64 was not throttled: %v", err)
	}
	elsewhere := auth.Source{PartnerID: "bank-b", ClientIP: "2001:db8:5:7::1"}
	if _, err := a.Authenticate(ctx, "victim", "victim-password-1", elsewhere); err != nil {
		t.Fatalf("a client in another /64 was blocked: %v", err)
	}
}
