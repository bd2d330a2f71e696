package auth_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/services/base-c/internal/auth"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// slowStore is an AccountStore whose reads can be made slow (ignoring the
// caller's context, as an Argon2id check that cannot be interrupted does),
// gated, or failing, and counts them.
type slowStore struct {
	mu    sync.Mutex
	acct  domain.Account
	delay time.Duration
	gate  chan struct{} // when set, a read waits for it to close
	fail  error
	reads atomic.Int64
}

func (s *slowStore) GetAccount(context.Context, string) (*domain.Account, error) {
	s.reads.Add(1)
	s.mu.Lock()
	delay, gate, fail, acct := s.delay, s.gate, s.fail, s.acct
	s.mu.Unlock()
	time.Sleep(delay)
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return nil, fail
	}
	return &acct, nil
}

func (s *slowStore) set(f func(s *slowStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func newSlow(t *testing.T, opts auth.Options) (*auth.Authenticator, *slowStore) {
	t.Helper()
	h, err := auth.Hash("owner-password-1", fast)
	if err != nil {
		t.Fatal(err)
	}
	st := &slowStore{acct: domain.Account{Username: "owner", PasswordHash: h}}
	opts.Params = fast
	a, err := auth.New(st, opts, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

var ownerSrc = auth.Source{PartnerID: "bank-a", ClientIP: "203.0.113.7"}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// make abuse found the well-behaved partner's credential going cold every
// CacheTTL: its next call needed an Argon2id check while the hostile
// partner flooded the verifier, and was refused (429). A credential in
// use is checked again in the background before it expires, so it never
// goes cold: here the store is down by the time the first entry would have
// expired, and the owner is still served from the cache.
func TestCredentialInUseNeverGoesCold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, st := newSlow(t, auth.Options{CacheTTL: 2 * time.Second, RefreshAfter: 500 * time.Millisecond})
	first := time.Now()
	if _, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if _, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the background check", func() bool { return st.reads.Load() == 2 })
	st.set(func(s *slowStore) { s.fail = errors.New("store down") })
	time.Sleep(time.Until(first.Add(2300 * time.Millisecond))) // past the first entry's expiry
	if _, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc); err != nil {
		t.Fatalf("a credential in steady use went cold: %v", err)
	}
}

// The background check drops a credential whose password no longer holds
// (rotated without the event reaching this replica): the old password is
// refused at once, not at the end of the TTL.
func TestBackgroundCheckDropsARotatedPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, st := newSlow(t, auth.Options{CacheTTL: time.Hour, RefreshAfter: 100 * time.Millisecond})
	if _, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc); err != nil {
		t.Fatal(err)
	}
	h, err := auth.Hash("owner-password-2", fast)
	if err != nil {
		t.Fatal(err)
	}
	st.set(func(s *slowStore) { s.acct.PasswordHash = h })
	time.Sleep(150 * time.Millisecond)
	// Still answered from the cache; the background check finds the change.
	if _, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the background check", func() bool { return st.reads.Load() == 2 })
	waitFor(t, "the old password refused", func() bool {
		_, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc)
		return errors.Is(err, domain.ErrUnauthorized)
	})
	if _, err := a.Authenticate(ctx, "owner", "owner-password-2", ownerSrc); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// make abuse found hostile wrong-password calls answered 503: a check that
// could not be interrupted overran the gateway's 250 ms deadline on a
// loaded machine. The caller gets "overloaded" (429) before its deadline
// however long the check takes, and the check, finishing on its own,
// still caches a good credential for the retry.
func TestAnsweredBeforeTheDeadlineHoweverSlowTheCheck(t *testing.T) {
	t.Parallel()
	a, st := newSlow(t, auth.Options{})
	// The check cannot end until the gate opens: the caller is answered
	// without it (no timing assert: a loaded machine only delays the
	// answer, never turns it into a wait for the check).
	gate := make(chan struct{})
	st.set(func(s *slowStore) { s.gate = gate })
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	_, err := a.Authenticate(ctx, "owner", "owner-password-1", ownerSrc)
	if !errors.Is(err, domain.ErrOverloaded) {
		t.Fatalf("want overloaded, got %v", err)
	}
	st.set(func(s *slowStore) { s.gate = nil })
	close(gate) // the check ends on its own and caches the credential
	st.set(func(s *slowStore) { s.fail = errors.New("store down") })
	waitFor(t, "the retry served from the cache", func() bool {
		_, err := a.Authenticate(context.Background(), "owner", "owner-password-1", ownerSrc)
		return err == nil
	})
	// A wrong password whose check ends after its caller left still counts
	// against its source.
	st.set(func(s *slowStore) { s.fail = nil })
	hostile := auth.Source{PartnerID: "bank-b", ClientIP: "203.0.113.7"}
	b, st2 := newSlow(t, auth.Options{FreeFailures: 1, ThrottleBase: time.Hour})
	st2.set(func(s *slowStore) { s.delay = 300 * time.Millisecond })
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := b.Authenticate(ctx, "owner", "guess-guess-guess", hostile)
		cancel()
		if !errors.Is(err, domain.ErrOverloaded) {
			t.Fatalf("want overloaded, got %v", err)
		}
		time.Sleep(600 * time.Millisecond) // the check ends on its own
	}
	if _, err := b.Authenticate(context.Background(), "owner", "guess-guess-guess", hostile); !errors.Is(err, domain.ErrThrottled) {
		t.Fatalf("failures that ended after their callers left were not counted: %v", err)
	}
}

// A check that read the account before an invalidation (rotation,
// disabling, an operator's lock) answers its own call but does not cache
// what it read: the next call checks again.
func TestInvalidationDuringACheckIsNotUndone(t *testing.T) {
	t.Parallel()
	a, st := newSlow(t, auth.Options{})
	gate := make(chan struct{})
	st.set(func(s *slowStore) { s.gate = gate })
	done := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(context.Background(), "owner", "owner-password-1", ownerSrc)
		done <- err
	}()
	waitFor(t, "the check to read the account", func() bool { return st.reads.Load() == 1 })
	a.Invalidate("owner")
	st.set(func(s *slowStore) { s.gate = nil })
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(context.Background(), "owner", "owner-password-1", ownerSrc); err != nil {
		t.Fatal(err)
	}
	if n := st.reads.Load(); n != 2 {
		t.Fatalf("the credential read before the invalidation was cached (%d store reads, want 2)", n)
	}
}
