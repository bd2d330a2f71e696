package breaker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-bureau/strata/pkg/breaker"
	"github.com/strata-bureau/strata/pkg/logging"
	"github.com/strata-bureau/strata/pkg/telemetry"
)

var errBoom = errors.New("boom")

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	b := breaker.Standalone(breaker.Config{Name: "hop", ConsecutiveFailures: 3, OpenFor: 50 * time.Millisecond})
	calls := 0
	fail := func() error { calls++; return errBoom }
	for range 3 {
		if err := b.Run(fail); !errors.Is(err, errBoom) {
			t.Fatalf("want errBoom, got %v", err)
		}
	}
	if b.State() != breaker.Open {
		t.Fatalf("want open after 3 failures, got %s", b.State())
	}
	err := b.Run(fail)
	if !errors.Is(err, breaker.ErrOpen) || calls != 3 {
		t.Fatalf("open breaker must refuse without calling: err=%v calls=%d", err, calls)
	}
	time.Sleep(60 * time.Millisecond)
	if err := b.Run(func() error { return nil }); err != nil {
		t.Fatalf("half-open trial should pass: %v", err)
	}
	if b.State() != breaker.Closed {
		t.Fatalf("want closed after successful trial, got %s", b.State())
	}
}

func TestDomainErrorsAndCancellationDoNotTrip(t *testing.T) {
	t.Parallel()
	notFound := errors.New("not found")
	b := breaker.Standalone(breaker.Config{
		Name: "db", ConsecutiveFailures: 2,
		IsFailure: func(err error) bool { return !errors.Is(err, notFound) },
	})
	for range 5 {
		_ = b.Run(func() error { return notFound })
		_ = b.Run(func() error { return context.Canceled })
	}
	if b.State() != breaker.Closed {
		t.Fatalf("domain errors tripped the breaker: %s", b.State())
	}
	v, err := breaker.Do(b, func() (int, error) { return 42, nil })
	if err != nil || v != 42 {
		t.Fatalf("Do lost the value: %d %v", v, err)
	}
}

func TestStateIsExportedAsMetric(t *testing.T) {
	t.Parallel()
	tel := telemetry.Noop()
	set, err := breaker.NewSet(tel.Meter("test"), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	b := set.New(breaker.Config{Name: "gateway->base-c", ConsecutiveFailures: 1, OpenFor: time.Minute})
	_ = b.Run(func() error { return errBoom })
	if set.States()["gateway->base-c"] != breaker.Open {
		t.Fatalf("set does not report open: %v", set.States())
	}
	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), `strata_breaker_state{breaker="gateway->base-c"} 2`) {
		t.Fatalf("metric missing or wrong:\n%s", body)
	}
}

// When a breaker opens, the log names the failure that tripped it, so an
// operator sees why a hop was cut; failures the rule excuses are not named.
func TestOpeningLogsTheLastFailure(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	logger := slog.New(slog.NewJSONHandler(&syncWriter{w: &buf}, nil))
	set, err := breaker.NewSet(telemetry.Noop().Meter("t"), logger)
	if err != nil {
		t.Fatal(err)
	}
	b := set.New(breaker.Config{Name: "t->backend", ConsecutiveFailures: 2, OpenFor: time.Minute})
	_ = b.Run(func() error { return status.Error(codes.Unavailable, "connection refused") })
	_ = b.Run(func() error { return status.Error(codes.InvalidArgument, "bad cpf 12345678901") })
	_ = b.Run(func() error { return status.Error(codes.Unavailable, "connection refused") })
	if b.State() != breaker.Open {
		t.Fatalf("state %s, want open", b.State())
	}
	out := buf.String()
	if !strings.Contains(out, `"last_failure":"Unavailable: rpc error: code = Unavailable desc = connection refused"`) {
		t.Fatalf("open transition does not name the last failure: %s", out)
	}
	if strings.Contains(out, "12345678901") {
		t.Fatalf("an excused caller error reached the log: %s", out)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
