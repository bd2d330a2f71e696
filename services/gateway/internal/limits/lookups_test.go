package limits_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-bureau/strata/services/gateway/internal/limits"
)

var errNoSuchID = errors.New("no such id")

// An id found unknown is answered unknown without a lookup until its
// negative TTL ends; a known id is looked up each time it is asked.
func TestUnknownIDIsLookedUpOncePerTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	finds := map[string]int{}
	find := func(id string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			finds[id]++
			if id == "made-up" {
				return "", errNoSuchID
			}
			return "key " + id, nil
		}
	}
	l := limits.NewLookups(1, time.Hour)
	for range 3 {
		if _, err := limits.Lookup(ctx, l, "made-up", errNoSuchID, find("made-up")); !errors.Is(err, errNoSuchID) {
			t.Fatalf("unknown id: %v", err)
		}
		if v, err := limits.Lookup(ctx, l, "k1", errNoSuchID, find("k1")); err != nil || v != "key k1" {
			t.Fatalf("known id: %q %v", v, err)
		}
	}
	if finds["made-up"] != 1 || finds["k1"] != 3 {
		t.Fatalf("lookups %v, want the unknown id once and the known one 3 times", finds)
	}
	expired := limits.NewLookups(1, time.Nanosecond)
	for range 2 {
		_, _ = limits.Lookup(ctx, expired, "made-up", errNoSuchID, find("made-up"))
		time.Sleep(time.Millisecond)
	}
	if finds["made-up"] != 3 {
		t.Fatalf("unknown id looked up %d times in all, want 3 (once more per expired TTL)", finds["made-up"])
	}
}

// With every lookup slot taken, a caller waits a second at most (busy),
// or until its context ends; the slot frees when the lookup returns.
func TestLookupsBusyWhileEverySlotIsTaken(t *testing.T) {
	t.Parallel()
	l := limits.NewLookups(1, 0)
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := limits.Lookup(context.Background(), l, "slow", errNoSuchID, func(context.Context) (int, error) {
			close(held)
			<-release
			return 1, nil
		})
		done <- err
	}()
	<-held
	if _, err := limits.Lookup(context.Background(), l, "k", errNoSuchID, func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, limits.ErrLookupsBusy) {
		t.Fatalf("every slot taken: %v, want ErrLookupsBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := limits.Lookup(ctx, l, "k", errNoSuchID, func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("context ended: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, err := limits.Lookup(context.Background(), l, "k", errNoSuchID, func(context.Context) (int, error) { return 2, nil }); err != nil || v != 2 {
		t.Fatalf("slot freed: %d %v", v, err)
	}
}
