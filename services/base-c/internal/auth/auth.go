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
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/strata-bureau/strata/services/base-c/internal/domain"
)

// AccountStore is what the authenticator needs from storage.
type AccountStore interface {
	GetAccount(ctx context.Context, username string) (*domain.Account, error)
	RecordFailure(ctx context.Context, username string) (int, error)
	LockUntil(ctx context.Context, username string, t time.Time) error
	ResetFailures(ctx context.Context, username string) error
}

// Options tune the authenticator.
type Options struct {
	// CacheTTL bounds how long a verified credential is trusted without a
	// new Argon2id check (default 60s). Invalidation events end it sooner.
	CacheTTL time.Duration
	// MaxCold caps concurrent Argon2id verifications (default 2: 2×19 MiB).
	MaxCold int
	// ColdWait is how long a request waits for a cold-verification slot
	// before it is refused as overloaded (default 2s).
	ColdWait time.Duration
	// LockoutThreshold failed logins lock the account (default 5).
	LockoutThreshold int
	// LockoutBase is the first lock's length, doubled per further failure
	// up to LockoutMax (defaults 30s and 15m).
	LockoutBase, LockoutMax time.Duration
	// IPFailureLimit failed logins per client IP within IPWindow block that IP
	// for the rest of the window (defaults 20 per minute).
	IPFailureLimit int
	IPWindow       time.Duration
	Params         Params
	// OnLock is called when an account becomes locked (to broadcast a
	// credential invalidation to the other replicas).
	OnLock func(username string)
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
	ips      *ipLimiter
	now      func() time.Time
}

type cached struct {
	mac   [sha256.Size]byte
	admin bool
}

// Principal is an authenticated caller.
type Principal struct {
	Username string
	Admin    bool
}

// New returns an authenticator.
func New(store AccountStore, opts Options, logger *slog.Logger) (*Authenticator, error) {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 60 * time.Second
	}
	if opts.MaxCold <= 0 {
		opts.MaxCold = 2
	}
	if opts.ColdWait <= 0 {
		opts.ColdWait = 2 * time.Second
	}
	if opts.LockoutThreshold <= 0 {
		opts.LockoutThreshold = 5
	}
	if opts.LockoutBase <= 0 {
		opts.LockoutBase = 30 * time.Second
	}
	if opts.LockoutMax <= 0 {
		opts.LockoutMax = 15 * time.Minute
	}
	if opts.IPFailureLimit <= 0 {
		opts.IPFailureLimit = 20
	}
	if opts.IPWindow <= 0 {
		opts.IPWindow = time.Minute
	}
	if opts.Params == (Params{}) {
		opts.Params = DefaultParams
	}
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
		ips: newIPLimiter(opts.IPFailureLimit, opts.IPWindow), now: time.Now,
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

// Authenticate checks user and password for a call from clientIP. Every
// refusal is domain.ErrUnauthorized (wrong password, unknown user, disabled
// or locked account look the same), except domain.ErrThrottled for an IP
// over its failure limit and domain.ErrOverloaded when cold checks are
// saturated.
func (a *Authenticator) Authenticate(ctx context.Context, user, password, clientIP string) (Principal, error) {
	if c, ok := a.cache.GetIfPresent(user); ok {
		m := a.mac(user, password)
		if subtle.ConstantTimeCompare(m[:], c.mac[:]) == 1 {
			return Principal{Username: user, Admin: c.admin}, nil
		}
	}
	if a.ips.blocked(clientIP, a.now()) {
		return Principal{}, domain.ErrThrottled
	}
	p, err := a.verifyCold(ctx, user, password)
	if errors.Is(err, domain.ErrUnauthorized) {
		a.ips.fail(clientIP, a.now())
	}
	return p, err
}

func (a *Authenticator) verifyCold(ctx context.Context, user, password string) (Principal, error) {
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
	if acct.Disabled || a.now().Before(acct.LockedUntil) {
		return Principal{}, domain.ErrUnauthorized
	}
	err = a.verify(ctx, password, acct.PasswordHash)
	if errors.Is(err, domain.ErrUnauthorized) {
		a.recordFailure(ctx, user)
		return Principal{}, err
	}
	if err != nil {
		return Principal{}, err
	}
	if acct.FailedAttempts > 0 {
		if err := a.store.ResetFailures(ctx, user); err != nil {
			a.logger.WarnContext(ctx, "could not reset failed attempts", "user", user, "err", err)
		}
	}
	a.cache.Set(user, cached{mac: a.mac(user, password), admin: acct.Admin})
	return Principal{Username: user, Admin: acct.Admin}, nil
}

// verify runs Argon2id under the concurrency cap.
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

func (a *Authenticator) recordFailure(ctx context.Context, user string) {
	n, err := a.store.RecordFailure(ctx, user)
	if err != nil {
		a.logger.WarnContext(ctx, "could not record failed login", "user", user, "err", err)
		return
	}
	if n < a.opts.LockoutThreshold {
		return
	}
	d := a.opts.LockoutBase
	for i := a.opts.LockoutThreshold; i < n && d < a.opts.LockoutMax; i++ {
		d *= 2
	}
	d = min(d, a.opts.LockoutMax)
	if err := a.store.LockUntil(ctx, user, a.now().Add(d)); err != nil {
		a.logger.WarnContext(ctx, "could not lock account", "user", user, "err", err)
		return
	}
	a.logger.WarnContext(ctx, "account locked after failed logins", "user", user, "failures", n, "for", d)
	a.Invalidate(user)
	if a.opts.OnLock != nil {
		a.opts.OnLock(user)
	}
}

// Invalidate drops the user's cached credential (password change, disable,
// lock, or an invalidation event from another replica).
func (a *Authenticator) Invalidate(user string) { a.cache.Invalidate(user) }

// InvalidateAll drops every cached credential (after missing events).
func (a *Authenticator) InvalidateAll() { a.cache.InvalidateAll() }

// HashPassword hashes with the configured parameters.
func (a *Authenticator) HashPassword(password string) (string, error) {
	return Hash(password, a.opts.Params)
}

// ipLimiter counts failures per client IP in fixed windows. It holds at most
// maxIPs addresses; beyond that it starts a fresh window for everyone, so a
// flood of spoofed addresses costs bounded memory.
type ipLimiter struct {
	limit  int
	window time.Duration

	mu    sync.Mutex
	start time.Time
	fails map[string]int
}

const maxIPs = 100_000

func newIPLimiter(limit int, window time.Duration) *ipLimiter {
	return &ipLimiter{limit: limit, window: window, fails: map[string]int{}}
}

func (l *ipLimiter) roll(now time.Time) {
	if now.Sub(l.start) >= l.window || len(l.fails) >= maxIPs {
		l.start = now
		clear(l.fails)
	}
}

func (l *ipLimiter) blocked(ip string, now time.Time) bool {
	if ip == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	return l.fails[ip] >= l.limit
}

func (l *ipLimiter) fail(ip string, now time.Time) {
	if ip == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	l.fails[ip]++
}
