package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/strata-bureau/strata/pkg/origin"
	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// AccountStore is what the authenticator needs from storage.
type AccountStore interface {
	GetAccount(ctx context.Context, username string) (*domain.Account, error)
}

// Source is who tries a credential: the partner and the client address the
// gateway reports (pkg/origin). Failed passwords slow down only the source
// that fails.
type Source struct {
	PartnerID string
	ClientIP  string
}

// Options tune the authenticator.
type Options struct {
	// CacheTTL bounds how long a verified credential is trusted without a
	// new Argon2id check (default 60s). Invalidation events end it sooner.
	CacheTTL time.Duration
	// RefreshAfter: a cached credential presented again after this long
	// (default half of CacheTTL) is answered from the cache and checked
	// again in the background, so a credential in steady use never goes
	// cold — its owner never waits for Argon2id behind someone's flood.
	RefreshAfter time.Duration
	// MaxCold caps concurrent Argon2id verifications (default 2: 2×19 MiB).
	MaxCold int
	// ColdWait is how long a request waits for a cold-verification slot
	// before it is refused as overloaded (default 2s).
	ColdWait time.Duration
	// Failed passwords are throttled per (account, partner, client
	// address): FreeFailures pass without delay (default 3); each further
	// one makes that source wait ThrottleBase, doubled per failure up to
	// ThrottleMax (defaults 1s and 1m). The count halves every
	// ThrottleHalfLife without failures (default 5m). No failure ever locks
	// the account for anyone else.
	FreeFailures              int
	ThrottleBase, ThrottleMax time.Duration
	ThrottleHalfLife          time.Duration
	// SourceFailureLimit failed logins per (partner, client address) within
	// SourceWindow, whatever the account, block that source for the rest of
	// the window (defaults 20 per minute): guessing across many accounts is
	// bounded too, and costs no Argon2id run once blocked.
	SourceFailureLimit int
	SourceWindow       time.Duration
	Params             Params
	// OnFailure, when set, is told of every wrong password this replica
	// counts (after counting it), to share it with the other replicas,
	// which count it through RecordFailure. It must not block.
	OnFailure func(Failure)
}

// Failure is one wrong password as the throttles count it: the account,
// the partner the caller spoke for, the client address's key
// (origin.SourceKey) and when.
type Failure struct {
	Username, PartnerID, Source string
	At                          time.Time
}

// keys are the throttles' keys of a failure: the source (partner and
// client address) and the (account, source) pair.
func (f Failure) keys() (source, who string) {
	source = f.PartnerID + "\x00" + f.Source
	return source, f.Username + "\x00" + source
}

// RecordFailure counts a wrong password another replica saw, so a guesser
// spreading attempts over the replicas gets no more than from one.
func (a *Authenticator) RecordFailure(f Failure) {
	at := f.At
	if now := a.now(); at.IsZero() || at.After(now) {
		at = now
	}
	source, who := f.keys()
	a.sources.fail(source, at)
	a.throttle.fail(who, at)
}

// Authenticator verifies basic-auth credentials.
type Authenticator struct {
	store  AccountStore
	opts   Options
	logger *slog.Logger
	// cacheKey keys the HMAC of cached credentials; random per process, so
	// the cache is useless to anyone who reads this process's memory dump
	// without the key, and never stored anywhere.
	cacheKey []byte
	cache    *otter.Cache[string, cached]
	cold     chan struct{}
	dummy    string // hash verified for unknown users, to equalise timing
	sources  *ipLimiter
	throttle *throttle
	busy     inFlight
	// refreshing marks users whose cached credential is being checked
	// again in the background.
	refreshing inFlight
	// gen counts invalidations: a check that began before one never
	// caches its (possibly outdated) result. genMu orders an invalidation
	// and a check's caching.
	genMu sync.Mutex
	gen   atomic.Uint64
	now   func() time.Time
}

// checkTimeout bounds a cold check that outlives its call (store read,
// wait for an Argon2id slot, the check itself).
const checkTimeout = 10 * time.Second

type cached struct {
	mac   [sha256.Size]byte
	admin bool
	at    time.Time // when Argon2id last verified it
}

// Principal is an authenticated caller.
type Principal struct {
	Username string
	Admin    bool
}

// New returns an authenticator.
func New(store AccountStore, opts Options, logger *slog.Logger) (*Authenticator, error) {
	opts = opts.withDefaults()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	dummy, err := Hash("dummy-password-for-timing", opts.Params)
	if err != nil {
		return nil, err
	}
	cache, err := otter.New(&otter.Options[string, cached]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, cached](opts.CacheTTL),
	})
	if err != nil {
		return nil, err
	}
	return &Authenticator{
		store: store, opts: opts, logger: logger, cacheKey: key, cache: cache,
		cold: make(chan struct{}, opts.MaxCold), dummy: dummy,
		sources:  newIPLimiter(opts.SourceFailureLimit, opts.SourceWindow),
		throttle: newThrottle(opts.FreeFailures, opts.ThrottleBase, opts.ThrottleMax, opts.ThrottleHalfLife),
		now:      time.Now,
	}, nil
}

func (a *Authenticator) mac(user, password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, a.cacheKey)
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Authenticate checks user and password for a call from src. Every
// refusal is domain.ErrUnauthorized (wrong password, unknown user, disabled
// or operator-locked account look the same, and take the same time),
// except domain.ErrThrottled for a source that must wait after failing
// and domain.ErrOverloaded when a cold check cannot be answered before the
// caller's deadline.
//
// A credential verified and cached keeps working whatever anyone else
// tries: only rotation, disabling or an operator's lock (invalidation
// events) evict it, never a failed attempt.
func (a *Authenticator) Authenticate(ctx context.Context, user, password string, src Source) (Principal, error) {
	if c, ok := a.fromCache(user, password); ok {
		if a.now().Sub(c.at) >= a.opts.RefreshAfter {
			a.refresh(ctx, user, password)
		}
		return Principal{Username: user, Admin: c.admin}, nil
	}
	now := a.now()
	// An IPv6 client counts as its /64: rotating addresses within it
	// buys no fresh budget (origin.SourceKey).
	failure := Failure{Username: user, PartnerID: src.PartnerID, Source: origin.SourceKey(src.ClientIP)}
	source, who := failure.keys()
	if a.sources.blocked(source, now) || a.throttle.waiting(who, now) {
		return Principal{}, domain.ErrThrottled
	}
	until := a.answerBy(ctx)
	if p, done, err := a.takeSource(ctx, user, password, source, who, until); done {
		return p, err
	}
	wait := until()
	if wait <= 0 {
		a.busy.give(source)
		return Principal{}, domain.ErrOverloaded
	}
	res := a.checkCold(ctx, password, failure)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-res:
		return r.p, r.err
	case <-t.C:
		return Principal{}, domain.ErrOverloaded
	case <-ctx.Done():
		// A starved timer can fire after the deadline: the answer is
		// still "overloaded" (the check did not fit the caller's time).
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Principal{}, domain.ErrOverloaded
		}
		return Principal{}, ctx.Err()
	}
}

// fromCache returns user's cached credential when password matches it.
func (a *Authenticator) fromCache(user, password string) (cached, bool) {
	c, ok := a.cache.GetIfPresent(user)
	if !ok {
		return cached{}, false
	}
	m := a.mac(user, password)
	return c, subtle.ConstantTimeCompare(m[:], c.mac[:]) == 1
}

// answerBy returns how long the caller can still wait for an answer.
//
// The answer must reach the caller before its deadline, whatever the
// machine's load: a deadline passing reads as this base failing (503,
// and a breaker count), while the truth is "overloaded, retry" (429).
// An Argon2id check cannot be interrupted, and under a flood on a
// loaded machine it takes many times its idle 23 ms, so the check runs
// on its own and the caller stops waiting for it a fifth of its time
// before the deadline; a check that ends after that still caches a
// good credential (the retry is a cache hit) and still counts a
// failure.
func (a *Authenticator) answerBy(ctx context.Context) func() time.Duration {
	answerBy := time.Time{}
	if dl, ok := ctx.Deadline(); ok {
		answerBy = dl.Add(-time.Until(dl) / 5)
	}
	return func() time.Duration {
		if answerBy.IsZero() {
			return a.opts.ColdWait
		}
		return time.Until(answerBy)
	}
}

// takeSource marks source busy with a cold check; done reports that the
// call is answered instead (p, err).
//
// One cold check in flight per source: a burst from one partner
// cannot take every Argon2id slot from the others. A second call from
// the same source waits for the first (whose success it may then find
// cached), never past a quarter of its time.
func (a *Authenticator) takeSource(ctx context.Context, user, password, source, who string, until func() time.Duration) (p Principal, done bool, err error) {
	for {
		ok, busy := a.busy.take(source)
		if ok {
			return Principal{}, false, nil
		}
		t := time.NewTimer(min(a.opts.ColdWait, until()/4))
		select {
		case <-busy:
			t.Stop()
		case <-t.C:
			return Principal{}, true, domain.ErrOverloaded
		case <-ctx.Done():
			t.Stop()
			return Principal{}, true, ctx.Err()
		}
		if c, hit := a.fromCache(user, password); hit {
			return Principal{Username: user, Admin: c.admin}, true, nil
		}
		if a.sources.blocked(source, a.now()) || a.throttle.waiting(who, a.now()) {
			return Principal{}, true, domain.ErrThrottled
		}
	}
}

type coldResult struct {
	p   Principal
	err error
}

// checkCold runs a cold check for a source taken by takeSource, counts its
// failure, frees the source, and sends the result on the returned channel.
// The check outlives the call if it must (bounded: one per source, at
// most MaxCold running, each waiting for a slot at most ColdWait).
func (a *Authenticator) checkCold(ctx context.Context, password string, f Failure) <-chan coldResult {
	res := make(chan coldResult, 1)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
	source, who := f.keys()
	go func() {
		defer cancel()
		p, err := a.verifyCold(cctx, f.Username, password)
		if errors.Is(err, domain.ErrUnauthorized) {
			f.At = a.now()
			a.sources.fail(source, f.At)
			a.throttle.fail(who, f.At)
			if a.opts.OnFailure != nil {
				a.opts.OnFailure(f)
			}
		}
		a.busy.give(source)
		res <- coldResult{p, err}
	}()
	return res
}

// refresh checks a cached credential again in the background (one check
// per user at a time): the entry is renewed when the password still holds,
// dropped when it no longer does, and left to expire when the store cannot
// say.
func (a *Authenticator) refresh(ctx context.Context, user, password string) {
	if ok, _ := a.refreshing.take(user); !ok {
		return
	}
	go func() {
		defer a.refreshing.give(user)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
		defer cancel()
		gen := a.gen.Load()
		_, err := a.verifyCold(cctx, user, password)
		if errors.Is(err, domain.ErrUnauthorized) && a.gen.Load() == gen {
			// The password no longer holds (changed without an event
			// reaching this replica, or the account disabled).
			a.Invalidate(user)
		}
	}()
}

func (a *Authenticator) verifyCold(ctx context.Context, user, password string) (Principal, error) {
	gen := a.gen.Load()
	acct, err := a.store.GetAccount(ctx, user)
	if errors.Is(err, domain.ErrNotFound) {
		// Spend the same time as a real check so timing does not reveal
		// which usernames exist.
		if err := a.verify(ctx, password, a.dummy); err != nil && !errors.Is(err, domain.ErrUnauthorized) {
			return Principal{}, err
		}
		return Principal{}, domain.ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	// A password check runs even for a disabled or locked account, so
	// its refusal takes as long as a wrong password's.
	verified := a.now()
	err = a.verify(ctx, password, acct.PasswordHash)
	if err != nil {
		return Principal{}, err
	}
	if acct.Disabled || a.now().Before(acct.LockedUntil) {
		return Principal{}, domain.ErrUnauthorized
	}
	// An invalidation (rotation, disabling, a lock) that arrived while
	// this check ran may have made the account read above outdated: the
	// answer stands for this call, but it is not cached.
	a.genMu.Lock()
	if a.gen.Load() == gen {
		a.cache.Set(user, cached{mac: a.mac(user, password), admin: acct.Admin, at: verified})
	}
	a.genMu.Unlock()
	return Principal{Username: user, Admin: acct.Admin}, nil
}

// verify runs Argon2id under the concurrency cap, waiting for a slot at
// most ColdWait (or until ctx ends).
func (a *Authenticator) verify(ctx context.Context, password, hash string) error {
	wait := time.NewTimer(a.opts.ColdWait)
	defer wait.Stop()
	select {
	case a.cold <- struct{}{}:
	case <-wait.C:
		return domain.ErrOverloaded
	case <-ctx.Done():
		return ctx.Err()
	}
	ok, err := Verify(password, hash)
	<-a.cold
	if err != nil {
		a.logger.ErrorContext(ctx, "stored password hash unusable", "err", err)
		return domain.ErrUnauthorized
	}
	if !ok {
		return domain.ErrUnauthorized
	}
	return nil
}

// ColdInFlight is the number of Argon2id checks running now.
func (a *Authenticator) ColdInFlight() int { return len(a.cold) }

// Invalidate drops the user's cached credential (password change, disable,
// lock, or an invalidation event from another replica).
func (a *Authenticator) Invalidate(user string) {
	a.genMu.Lock()
	defer a.genMu.Unlock()
	a.gen.Add(1)
	a.cache.Invalidate(user)
}

// InvalidateAll drops every cached credential (after missing events).
func (a *Authenticator) InvalidateAll() {
	a.genMu.Lock()
	defer a.genMu.Unlock()
	a.gen.Add(1)
	a.cache.InvalidateAll()
}

// HashPassword hashes with the configured parameters.
func (a *Authenticator) HashPassword(password string) (string, error) {
	return Hash(password, a.opts.Params)
}
