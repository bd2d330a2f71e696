// Package breaker wraps sony/gobreaker v2 circuit breakers with the defaults
// Strata uses on every hop, and exports each breaker's state as the metric
// strata_breaker_state{breaker="..."} (0 closed, 1 half-open, 2 open) so
// dashboards and readiness probes see it.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/status"
)

// ErrOpen is returned, wrapped, when a breaker refuses a call because it is
// open or half-open with its trial calls already in flight.
var ErrOpen = errors.New("circuit breaker open")

// State of a breaker.
type State string

// The three states.
const (
	Closed   State = "closed"
	HalfOpen State = "half-open"
	Open     State = "open"
)

// Config of one breaker. Zero values take the defaults documented per field.
type Config struct {
	// Name identifies the hop, e.g. "gateway->base-b[127.0.0.1:7102]".
	Name string
	// ConsecutiveFailures opens the breaker (default 5).
	ConsecutiveFailures uint32
	// OpenFor is how long it stays open before trying again (default 5s).
	OpenFor time.Duration
	// HalfOpenRequests is how many trial calls pass when half-open (default 1).
	HalfOpenRequests uint32
	// IsFailure says whether an error counts against the hop; it narrows
	// IsBackendFailure (see rule.go), which always applies: an error that
	// IsBackendFailure excuses never counts. Stores pass one that excuses
	// their domain errors such as "not found". An error that does not count
	// changes nothing: it is neither a failure nor a success.
	IsFailure func(error) bool
}

// Breaker guards one hop.
type Breaker struct {
	cb *gobreaker.CircuitBreaker[any]
}

// Set creates breakers and reports their states.
type Set struct {
	logger      *slog.Logger
	transitions metric.Int64Counter

	mu       sync.Mutex
	breakers map[string]*Breaker
}

// NewSet returns an empty set whose breakers are observed through meter.
func NewSet(meter metric.Meter, logger *slog.Logger) (*Set, error) {
	s := &Set{logger: logger, breakers: map[string]*Breaker{}}
	var err error
	s.transitions, err = meter.Int64Counter("strata_breaker_transitions_total",
		metric.WithDescription("Circuit breaker state changes, by breaker and the state changed to (closed, half-open, open)."))
	if err != nil {
		return nil, fmt.Errorf("breaker: counter: %w", err)
	}
	_, err = meter.Int64ObservableGauge("strata_breaker_state",
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for name, st := range s.States() {
				o.Observe(stateValue(st), metric.WithAttributes(attribute.String("breaker", name)))
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("breaker: gauge: %w", err)
	}
	return s, nil
}

func stateValue(s State) int64 {
	switch s {
	case HalfOpen:
		return 1
	case Open:
		return 2
	}
	return 0
}

// New creates (or returns the existing) breaker named cfg.Name.
func (s *Set) New(cfg Config) *Breaker {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.breakers[cfg.Name]; ok {
		return b
	}
	b := newBreaker(cfg, s.logger, s.transitions)
	s.breakers[cfg.Name] = b
	// A zero series per breaker, so "opened in the last N minutes" reads
	// 0 rather than nothing before the first opening.
	s.transitions.Add(context.Background(), 0, metric.WithAttributes(attribute.String("breaker", cfg.Name), attribute.String("to", "open")))
	return b
}

// Remove forgets a breaker (a replica that left).
func (s *Set) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.breakers, name)
}

// States returns every breaker's state by name.
func (s *Set) States() map[string]State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]State, len(s.breakers))
	for name, b := range s.breakers {
		out[name] = b.State()
	}
	return out
}

func newBreaker(cfg Config, logger *slog.Logger, transitions metric.Int64Counter) *Breaker {
	if cfg.ConsecutiveFailures == 0 {
		cfg.ConsecutiveFailures = 5
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 5 * time.Second
	}
	if cfg.HalfOpenRequests == 0 {
		cfg.HalfOpenRequests = 1
	}
	narrow := cfg.IsFailure
	isFailure := func(err error) bool {
		return IsBackendFailure(err) && (narrow == nil || narrow(err))
	}
	threshold := cfg.ConsecutiveFailures
	// The last failure counted, named when the breaker opens: an operator
	// must see why a hop was cut, not only that it was.
	var lastFailure atomic.Pointer[string]
	st := gobreaker.Settings{
		Name:         cfg.Name,
		MaxRequests:  cfg.HalfOpenRequests,
		Timeout:      cfg.OpenFor,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		IsSuccessful: func(err error) bool { return err == nil },
		// An error that is not the hop's failure says nothing about the
		// hop's health either way: it changes no count and no state.
		IsExcluded: func(err error) bool {
			if err == nil {
				return false
			}
			if isFailure(err) {
				msg := failureSummary(err)
				lastFailure.Store(&msg)
				return false
			}
			return true
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			if transitions != nil {
				transitions.Add(context.Background(), 1, metric.WithAttributes(attribute.String("breaker", name), attribute.String("to", to.String())))
			}
			if logger == nil {
				return
			}
			attrs := []any{"breaker", name, "from", from.String(), "to", to.String()}
			if to == gobreaker.StateOpen {
				if m := lastFailure.Load(); m != nil {
					attrs = append(attrs, "last_failure", *m)
				}
			}
			logger.Warn("circuit breaker state changed", attrs...)
		},
	}
	return &Breaker{cb: gobreaker.NewCircuitBreaker[any](st)}
}

// failureSummary describes a counted failure for the log: its gRPC code
// and the first 200 bytes of its message (failures that count are the
// hop's own — transport, deadline, driver — so they carry no caller input).
func failureSummary(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + msg
	}
	return msg
}

// Standalone returns a breaker outside any Set (tools and tests).
func Standalone(cfg Config) *Breaker { return newBreaker(cfg, nil, nil) }

// Name of the breaker.
func (b *Breaker) Name() string { return b.cb.Name() }

// State of the breaker now.
func (b *Breaker) State() State {
	switch b.cb.State() {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

// Do runs fn through breaker b. When b refuses the call it returns an error
// wrapping ErrOpen at once, without calling fn.
func Do[T any](b *Breaker, fn func() (T, error)) (T, error) {
	v, err := b.cb.Execute(func() (any, error) { return fn() })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		var zero T
		return zero, fmt.Errorf("%s: %w", b.cb.Name(), ErrOpen)
	}
	out, _ := v.(T)
	return out, err
}

// Run is Do for calls that return only an error.
func (b *Breaker) Run(fn func() error) error {
	_, err := Do(b, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}
